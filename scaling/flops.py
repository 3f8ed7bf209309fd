"""The FLOPs-per-token rule both wings share: training compute C = 6 N D, forward (2) plus backward
(4) FLOPs per parameter per token. An int, so 6 * N * D of integer counts is exact before any
rounding (float(6 * N * D) equals 6.0 * N * D wherever 6N and D are exact floats)."""

FLOPS_PER_PARAM_TOKEN = 6
