"""The benchmark's wrk script and the parser of what it reports (no load is generated here)."""

import json

import pytest

from bench.wrk import REQUEST_BODY, WrkFailed, parse_wrk_output, write_script

# Recorded from wrk 4.1.0 (Debian) with bench/.work/chat.lua against the nginx upstream:
# `wrk -t1 -c2 -d1s --latency`. wrk's own summary above the BENCH_JSON line agrees with it
# (p50 28us, p99 278us, 64589 requests in 1.00 s).
OK_RUN = """\
Running 1s test @ http://127.0.0.1:47687/v1/chat/completions
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    44.52us  178.12us   4.06ms   98.96%
    Req/Sec    65.17k    11.23k   75.12k    90.00%
  Latency Distribution
     50%   28.00us
     75%   32.00us
     90%   43.00us
     99%  278.00us
  64589 requests in 1.00s, 26.98MB read
Requests/sec:  64576.28
Transfer/sec:     26.97MB
BENCH_JSON {"requests":64589,"duration_us":1000197,"bytes":28289982,"p50_us":28,"p99_us":278,\
"mean_us":44.5,"max_us":4059,"connect":0,"read":0,"write":0,"status":0,"timeout":0}
"""

# The same against a path nginx answers with 404: every answer is a non-2xx.
NOT_FOUND_RUN = """\
Running 1s test @ http://127.0.0.1:47687/nope
  1 threads and 2 connections
  80803 requests in 1.10s, 22.66MB read
  Non-2xx or 3xx responses: 80803
Requests/sec:  73498.03
BENCH_JSON {"requests":80803,"duration_us":1099390,"bytes":23756082,"p50_us":25,"p99_us":64,\
"mean_us":30.1,"max_us":2352,"connect":0,"read":0,"write":0,"status":80803,"timeout":0}
"""


def test_the_done_hook_line_gives_throughput_and_percentiles_in_milliseconds():
    result = parse_wrk_output(OK_RUN, connections=2)
    assert result.requests == 64589
    assert result.rps == pytest.approx(64576.3, abs=0.1)  # what wrk itself printed
    assert result.p50_ms == pytest.approx(0.028)
    assert result.p99_ms == pytest.approx(0.278)
    assert result.errors == 0


def test_non_2xx_answers_are_counted_as_errors():
    result = parse_wrk_output(NOT_FOUND_RUN, connections=2)
    assert result.non_2xx == 80803
    assert result.errors == 80803


def test_socket_errors_of_every_kind_are_summed():
    line = (
        'BENCH_JSON {"requests":10,"duration_us":1000000,"bytes":1,"p50_us":1,"p99_us":2,'
        '"mean_us":1.0,"max_us":3,"connect":1,"read":2,"write":3,"status":0,"timeout":4}'
    )
    assert parse_wrk_output(line, connections=1).socket_errors == 10


def test_output_without_the_hook_line_is_a_failure_not_a_zero():
    with pytest.raises(WrkFailed):
        parse_wrk_output(OK_RUN.split("BENCH_JSON")[0], connections=2)


def test_the_script_sends_the_chat_body_and_reads_the_key_from_the_environment(tmp_path):
    script = write_script(tmp_path / "chat.lua").read_text()
    assert json.dumps(REQUEST_BODY, separators=(",", ":")) in script
    assert 'os.getenv("BENCH_AUTH")' in script
    assert "sk-" not in script
