"""The MCP gateway's domain: upstream MCP servers, approved tools pinned by digest, allowlists,
and the aggregator that lists and calls tools for one caller. The HTTP surface is
``gateway.api.mcp``; nothing here knows about HTTP.
"""
