"""Engram behind the memory interfaces of agent frameworks, each an optional extra of the SDK.

* :mod:`engram.integrations.langgraph`: ``EngramStore``, a LangGraph / LangChain ``BaseStore``
  (``pip install 'engram-memory-client[langgraph]'``).
* :mod:`engram.integrations.openai_agents`: ``EngramSession``, an OpenAI Agents SDK ``Session``
  (``pip install 'engram-memory-client[openai-agents]'``).
* :mod:`engram.integrations.autogen`: ``EngramMemory``, an AutoGen ``Memory``
  (``pip install 'engram-memory-client[autogen]'``).
* :mod:`engram.integrations.llamaindex`: ``EngramMemoryBlock``, a LlamaIndex memory block
  (``pip install 'engram-memory-client[llamaindex]'``).

Importing this package imports no framework; importing a module whose framework is not installed
raises ``ImportError`` naming the extra.
"""
