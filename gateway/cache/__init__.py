"""The exact-match response cache: ``responses`` (what is cached, for whom, under which key) over
``stores`` (an in-memory LRU, or Redis with every entry encrypted)."""
