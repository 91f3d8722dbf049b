"""Reading a server's queue from its Prometheus page: vLLM, SGLang and TGI names."""

from __future__ import annotations

import pytest

from modelgate_gateway.upstream.loadreading import parse_load

VLLM = """# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="llama"} 3.0
vllm:num_requests_waiting{engine="0",model_name="llama"} 5.0
vllm:kv_cache_usage_perc{engine="0",model_name="llama"} 0.42
vllm:num_requests_running_other 100
vllm:request_success_total{finished_reason="stop",model_name="llama"} 1234.0
"""


def test_vllm_page() -> None:
    assert parse_load(VLLM) == (3.0, 5.0, 0.42)


def test_older_vllm_names_the_cache_gpu_cache_usage() -> None:
    page = 'vllm:num_requests_running{model_name="m"} 1\nvllm:gpu_cache_usage_perc{model_name="m"} 0.9 1700000000\n'
    assert parse_load(page) == (1.0, 0.0, 0.9)


def test_sglang_and_tgi_pages() -> None:
    sglang = 'sglang:num_running_reqs{model_name="m"} 2\nsglang:num_queue_reqs{model_name="m"} 4\nsglang:token_usage{model_name="m"} 0.5\n'
    assert parse_load(sglang) == (2.0, 4.0, 0.5)
    assert parse_load("tgi_queue_size 7\ntgi_batch_current_size 3\n") == (3.0, 7.0, 0.0)


def test_several_models_on_one_server_add_up() -> None:
    page = 'vllm:num_requests_waiting{model_name="a"} 1\nvllm:num_requests_waiting{model_name="b"} 2\n'
    assert parse_load(page) == (0.0, 3.0, 0.0)


@pytest.mark.parametrize(
    "page",
    [
        "",
        "process_cpu_seconds_total 12\n",
        'vllm:num_requests_waiting{model_name="m"} NaN\n',
        'vllm:num_requests_waiting{model_name="m"} -1\n',
        'vllm:num_requests_waiting{model_name="m"}\n',
        "<html>not metrics</html>",
    ],
)
def test_pages_without_a_usable_queue_give_nothing(page: str) -> None:
    assert parse_load(page) is None


def test_a_kv_cache_above_one_is_cut_to_one() -> None:
    assert parse_load("vllm:num_requests_running 0\nvllm:kv_cache_usage_perc 3.5\n") == (0.0, 0.0, 1.0)
