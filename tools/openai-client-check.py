#!/usr/bin/env python3
"""Talks to a running `conclave serve` with the official OpenAI Python client.

Usage: tools/openai-client-check.py URL MODEL   (URL like http://127.0.0.1:8000)

Runs completions and chat completions, each whole and streamed, greedy (temperature 0,
one seed), and checks what the client parsed: text, usage, finish reasons, log-probabilities,
streamed text equal to the whole text, and that error answers become the client's typed
exceptions. Prints one line per failed check and exits 1 if any failed; exits 2 when the
openai package is missing (tools/test installs it in .venv-openai).
"""
import sys

try:
    import openai
    from openai import OpenAI
except ImportError:
    print("openai-client-check: the openai package is not installed; run tools/test (it creates .venv-openai)", file=sys.stderr)
    sys.exit(2)

MAX_TOKENS = 12
SEED = 7


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = []

    def expect(self, condition, message):
        if condition:
            self.passed += 1
        else:
            self.failed.append(message)


def streamed(chunks, text_of):
    """Concatenated text, finish reasons and the final usage of a stream."""
    text, finishes, usage = "", [], None
    for chunk in chunks:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            text += text_of(choice) or ""
            if choice.finish_reason is not None:
                finishes.append(choice.finish_reason)
    return text, finishes, usage


def check_usage(checks, label, usage, completion_tokens):
    checks.expect(usage is not None, f"{label}: no usage")
    if usage is None:
        return
    checks.expect(usage.prompt_tokens > 0, f"{label}: prompt_tokens {usage.prompt_tokens}")
    checks.expect(usage.completion_tokens == completion_tokens,
                  f"{label}: completion_tokens {usage.completion_tokens}, expected {completion_tokens}")
    checks.expect(usage.total_tokens == usage.prompt_tokens + usage.completion_tokens,
                  f"{label}: total_tokens {usage.total_tokens} is not prompt + completion")


def check_completions(client, model, checks):
    fields = dict(model=model, prompt="The quick brown fox", max_tokens=MAX_TOKENS, temperature=0, seed=SEED,
                  extra_body={"ignore_eos": True})
    whole = client.completions.create(**fields)
    checks.expect(whole.object == "text_completion", f"completions: object {whole.object!r}")
    checks.expect(len(whole.choices) == 1, f"completions: {len(whole.choices)} choices")
    choice = whole.choices[0]
    checks.expect(bool(choice.text), "completions: empty text")
    checks.expect(choice.finish_reason == "length", f"completions: finish_reason {choice.finish_reason!r}")
    check_usage(checks, "completions", whole.usage, MAX_TOKENS)

    stream = client.completions.create(**fields, stream=True, stream_options={"include_usage": True})
    text, finishes, usage = streamed(stream, lambda c: c.text)
    checks.expect(text == choice.text, f"completions: streamed text {text!r} differs from {choice.text!r}")
    checks.expect(finishes == ["length"], f"completions: streamed finish reasons {finishes}")
    checks.expect(usage == whole.usage, f"completions: streamed usage {usage} differs from {whole.usage}")


def check_chat(client, model, checks):
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Name a colour."}]
    fields = dict(model=model, messages=messages, max_tokens=MAX_TOKENS, temperature=0, seed=SEED,
                  extra_body={"ignore_eos": True})
    whole = client.chat.completions.create(**fields, logprobs=True, top_logprobs=2)
    checks.expect(whole.object == "chat.completion", f"chat: object {whole.object!r}")
    choice = whole.choices[0]
    checks.expect(choice.message.role == "assistant", f"chat: role {choice.message.role!r}")
    checks.expect(bool(choice.message.content), "chat: empty content")
    checks.expect(choice.finish_reason == "length", f"chat: finish_reason {choice.finish_reason!r}")
    check_usage(checks, "chat", whole.usage, MAX_TOKENS)
    entries = choice.logprobs.content if choice.logprobs else []
    checks.expect(len(entries) == MAX_TOKENS, f"chat: {len(entries)} logprobs entries, expected {MAX_TOKENS}")
    checks.expect(all(len(e.top_logprobs) == 2 and e.logprob <= 0 for e in entries), "chat: malformed logprobs entries")

    stream = client.chat.completions.create(**fields, stream=True, stream_options={"include_usage": True})
    text, finishes, usage = streamed(stream, lambda c: c.delta.content)
    checks.expect(text == choice.message.content,
                  f"chat: streamed text {text!r} differs from {choice.message.content!r}")
    checks.expect(finishes == ["length"], f"chat: streamed finish reasons {finishes}")
    checks.expect(usage == whole.usage, f"chat: streamed usage {usage} differs from {whole.usage}")


def check_errors(client, model, checks):
    try:
        client.completions.create(model="no-such-model", prompt="Hi", max_tokens=1)
        checks.expect(False, "an unknown model raised nothing")
    except openai.NotFoundError as e:
        checks.expect(e.status_code == 404 and e.code == "model_not_found", f"unknown model: {e.status_code} {e.code}")
    try:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hi"}], max_tokens=0)
        checks.expect(False, "max_tokens 0 raised nothing")
    except openai.BadRequestError as e:
        checks.expect(e.status_code == 400 and e.param == "max_tokens", f"max_tokens 0: {e.status_code} param {e.param}")


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    url, model = sys.argv[1].rstrip("/"), sys.argv[2]
    client = OpenAI(base_url=url + "/v1", api_key="conclave-check", max_retries=0, timeout=60)
    checks = Checks()
    try:
        served = [m.id for m in client.models.list().data]
        checks.expect(model in served, f"models: {model!r} not in {served}")
        check_completions(client, model, checks)
        check_chat(client, model, checks)
        check_errors(client, model, checks)
    except openai.OpenAIError as e:
        checks.failed.append(f"a request raised {type(e).__name__}: {e}")
    for message in checks.failed:
        print(f"openai-client-check: FAILED {message}", file=sys.stderr)
    status = "failed" if checks.failed else "passed"
    print(f"openai-client-check: {checks.passed} checks passed, {len(checks.failed)} failed "
          f"(openai {openai.__version__}, {url}, model {model}): {status}")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
