"""How this process reaches other hosts: proxies, TLS trust, the routed aiohttp connector."""
