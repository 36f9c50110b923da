"""Pieces of the code_interpreter tool that need no process: argument decoding, streamed
input, what the model reads back."""

from __future__ import annotations

import json

import pytest

from services.assistants.runs.code_interpreter import (
    history_call,
    input_code,
    partial_code,
    relay_delta,
)
from services.assistants.runs.toolcalls import ToolCalls
from services.assistants.sandbox import ExecutionResult

CODE = 'print("a\\tb")\nx = "\\u00e9"  # é\nprint(x)'


def test_input_code_accepts_json_raw_newlines_and_bare_code() -> None:
    assert input_code(json.dumps({"code": CODE})) == CODE
    assert input_code('{"code": "print(1)\nprint(2)"}') == "print(1)\nprint(2)"
    assert input_code("print(3)") == "print(3)"
    assert input_code('{"other": 1}') == '{"other": 1}'


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7])
def test_streamed_code_grows_to_the_whole_code(size: int) -> None:
    arguments = json.dumps({"code": CODE})
    seen = ""
    for end in range(0, len(arguments) + 1, size):
        decoded = partial_code(arguments[:end])
        assert decoded.startswith(seen), (seen, decoded)
        seen = decoded
    assert partial_code(arguments) == CODE


def test_relayed_deltas_carry_the_code_in_pieces() -> None:
    arguments = json.dumps({"code": CODE})
    calls = ToolCalls()
    fragments = [{"index": 0, "id": "call_1", "function": {"name": "code_interpreter"}}]
    fragments += [
        {"index": 0, "function": {"arguments": arguments[i : i + 4]}}
        for i in range(0, len(arguments), 4)
    ]
    deltas = []
    for fragment in fragments:
        delta = calls.add(fragment)
        deltas.append(relay_delta(calls.calls[delta["index"]], delta))
    assert deltas[0] == {
        "index": 0,
        "type": "code_interpreter",
        "id": "call_1",
        "code_interpreter": {"input": "", "outputs": []},
    }
    assert "".join(d["code_interpreter"]["input"] for d in deltas) == CODE
    assert calls.calls[0].as_object(with_output=True)["code_interpreter"]["input"] == CODE


def test_long_output_reaches_the_model_as_head_and_tail() -> None:
    logs = "".join(f"line {n}\n" for n in range(10_000))
    shown = ExecutionResult(logs=logs, error="ValueError: bad").model_output(1000)
    assert len(shown) < 1200
    assert shown.startswith("line 0\n")
    assert "line 9999" in shown
    assert "characters omitted" in shown
    assert shown.endswith("ValueError: bad")


def test_history_gives_back_the_same_call_and_output() -> None:
    recorded = {
        "id": "call_9",
        "type": "code_interpreter",
        "code_interpreter": {
            "input": "print(1)",
            "outputs": [
                {"type": "logs", "logs": "1\n"},
                {"type": "image", "image": {"file_id": "file-x"}},
            ],
        },
    }
    chat_call, output = history_call(recorded, 20_000)
    assert chat_call == {
        "id": "call_9",
        "type": "function",
        "function": {"name": "code_interpreter", "arguments": '{"code": "print(1)"}'},
    }
    assert output == "1\n\n[1 image(s) displayed to the user]"
