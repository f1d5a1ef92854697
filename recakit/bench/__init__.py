"""Benchmarks: GenEval (`geneval`) with its Mask2Former scorer (`mask2former`), DPG-Bench (`dpg`),
and the published results and tables (`report`)."""
