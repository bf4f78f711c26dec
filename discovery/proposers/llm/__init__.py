"""The LLM proposers (`llm`: any OpenAI-compatible endpoint; `hf-local`: a Hugging Face model from
a directory): prompts from the archive, calls with retries, a breaker and a budget, replies read
into candidates, repair turns with the sandbox's reasons.

    proposer.py   LLMProposer: one proposal call, its replies and repairs
    prompts.py    what is sent;  replies.py  what comes back, read into candidates
    calls.py      one logical call: budget, retries, breaker, the LLMCall record
    client.py     the LLMClient protocol and its OpenAI-compatible implementation
    hf_local.py   a local transformers model as an LLMClient (imports torch: only when used)
    bandit.py     choosing among several models by acceptance per dollar
    breaker.py, pricing.py, config.py (the spec's sections), wiring.py (building it all)
"""
