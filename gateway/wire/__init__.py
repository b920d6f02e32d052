"""Wire formats, pure and shared by both directions: ``openai`` (the internal shape) and
``anthropic`` (Messages). Ingress routes and provider adapters translate with the same code."""
