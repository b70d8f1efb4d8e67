"""`python -m bench` (`make bench`): ratio benchmarks of the real server, not part of `make test`.

Absolute numbers on a shared machine are noise, so every target is a RATIO of two figures taken
in the same run (interleaved rounds against the same server process), each the median of several
rounds. Results go to `bench/results.md`; one line per target is printed.
"""
