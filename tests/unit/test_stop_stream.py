"""Stop during a streamed answer leaves a quiet log (issue 15, item 7).

Chainlit stops an answer by cancelling the handler's task, wherever it is: inside the answer stream or in
the loop body that sends a token. `chainlit run` applies nest_asyncio, whose event loop never installs
asyncio's async generator hooks, so a generator left behind was closed by the garbage collector, without a
loop, and LangChain's streams, which await in their `except`/`finally`, printed "async generator ignored
GeneratorExit". The stream is run the way `chainlit run` runs it: in a child process with nest_asyncio.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.servers import ROOT

STOPS = r"""
import asyncio, gc, json, sys
import nest_asyncio

nest_asyncio.apply()  # what `chainlit run` does before it starts the server

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from chains import RagChain, Token
from core.settings import load_settings
from tests.fakes import MemorySearcher, chunk

DOCS = [
    chunk("t1", "turbine.md", "The Zephyr turbine must be serviced every 1200 operating hours by an engineer.", 1),
    chunk("t2", "turbine.md", "Warranty claims for the Zephyr turbine are handled by the Orion support desk.", 2),
    chunk("k0", "kitchen.md", "The office kitchen is cleaned daily at 18:30 by the Bright Facilities team.", 0),
]
LONG = " ".join(f"word{i}" for i in range(300))


class SlowModel(GenericFakeChatModel):
    async def _astream(self, *args, **kwargs):
        async for piece in super()._astream(*args, **kwargs):
            await asyncio.sleep(0.002)
            yield piece


async def consume(rag, got, body_s):
    async for event in rag.astream("Who handles warranty claims for the Zephyr turbine?"):
        if isinstance(event, Token):
            got.append(event.text)
            if body_s:
                await asyncio.sleep(body_s)  # the handler sending the token to the browser


async def main():
    errors = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, context: errors.append(context["message"]))
    settings = load_settings(milvus_uri="unused.db", score_threshold=0.0)
    stopped = []
    for model in (None, SlowModel(messages=iter([AIMessage(LONG)] * 100))):
        rag = RagChain(MemorySearcher(DOCS), model, settings)
        for trial in range(8):
            got = []
            task = asyncio.create_task(consume(rag, got, 0.005 if trial % 2 else 0))
            while len(got) < 3 + trial and not task.done():
                await asyncio.sleep(0.001)
            task.cancel()  # Stop
            try:
                await task
            except asyncio.CancelledError:
                stopped.append(len(got))
            gc.collect()
            await asyncio.sleep(0.02)
    gc.collect()
    await asyncio.sleep(0.1)
    print(json.dumps({"stopped": stopped, "loop_errors": errors}))


asyncio.run(main())
"""


def test_stopping_a_streamed_answer_closes_its_generators_quietly() -> None:
    done = subprocess.run([sys.executable, "-c", STOPS], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(report["stopped"]) == 16  # every answer was stopped mid-stream
    assert "ignored GeneratorExit" not in done.stderr, done.stderr[-3000:]
    assert "Exception ignored" not in done.stderr, done.stderr[-3000:]
    assert "was never retrieved" not in done.stderr and "destroyed but it is pending" not in done.stderr
    assert report["loop_errors"] == []
