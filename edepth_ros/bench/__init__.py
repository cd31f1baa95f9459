"""Benchmarks printing JSON (median, p95 and a reference measured in the same run, as a ratio).

One module per target (`embodied`, `model`, `node`), each with `add_arguments(parser)` and
`run(args)`; `edepth bench TARGET` dispatches to them and `bench/*.py` scripts call the same code."""
