"""The asyncio glue: one protocol object per socket, driving the sans-IO protocol code."""
