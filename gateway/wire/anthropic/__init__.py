"""The Anthropic Messages wire format, both directions, in one package.

- ``vocabulary``: the tables and conversions both directions share (stop reasons, tool choice,
  content blocks, tool calls, usage, the error shape);
- ``messages``: requests and answers (ingress: a client speaking Anthropic; egress: an Anthropic
  deployment serving an OpenAI-shaped call);
- ``streams``: the stream translators for the same two directions.

``gateway.api.inference`` uses the ingress half, ``gateway.providers.anthropic`` the egress half.
"""
