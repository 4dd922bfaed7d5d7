"""The `openai` Python client against `gemma-embed serve`, as users call it.

Usage: openai_client.py BASE_URL API_KEY. Prints one JSON object with what the server answered;
the Rust test `openai_python_client` (tests/serve.rs) checks it against the library.
"""

import json
import sys

import openai

base_url, key = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0)
texts = ["Hello, world!", "which planet is red?"]
out = {}

# The client's default: it asks for base64 and decodes it itself.
r = client.embeddings.create(model="embeddinggemma", input=texts)
out["default"] = [d.embedding for d in r.data]
out["model"] = r.model
assert r.usage.prompt_tokens > 0 and r.usage.total_tokens == r.usage.prompt_tokens

r = client.embeddings.create(
    model="embeddinggemma", input=texts, dimensions=256, encoding_format="float"
)
out["float256"] = [d.embedding for d in r.data]

try:
    client.embeddings.create(model="embeddinggemma", input=[""])
except openai.APIStatusError as e:
    out["empty_status"] = e.status_code

try:
    client.embeddings.create(model="embeddinggemma", input="x", dimensions=100)
except openai.APIStatusError as e:
    out["dimension_status"] = e.status_code

try:
    openai.OpenAI(base_url=base_url, api_key="wrong", max_retries=0).embeddings.create(
        model="embeddinggemma", input="x"
    )
except openai.AuthenticationError as e:
    out["auth_status"] = e.status_code

print(json.dumps(out))
