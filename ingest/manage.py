"""CLI: python -m ingest.manage list|delete|reindex|copy — the documents in the knowledge base."""

from __future__ import annotations

import argparse
import json
import os
import sys

from pydantic import SecretStr

from core.access import Viewer
from core.cli import run_plainly
from core.errors import KnowledgeBaseError
from core.runtime import open_knowledge_base
from core.settings import Settings, load_settings
from core.users import registered_viewer
from ingest.documents import DocumentInfo, delete_document, describe, list_documents, reindex_document
from ingest.pipeline import Ingestor


async def acting_as(settings: Settings, user: str | None) -> Viewer | None:
    """The user named by --as (with their role), or None: the operator, who manages everything."""
    return await registered_viewer(settings.database, user) if user else None


def pick(docs: list[DocumentInfo], name: str, scope: str | None, owner: str | None) -> list[DocumentInfo]:
    return [
        d
        for d in docs
        if d.source == name and (scope is None or d.scope == scope) and (owner is None or d.owner == owner)
    ]


async def apply_each(ingestor: Ingestor, viewer: Viewer | None, docs: list[DocumentInfo], action: str) -> int:
    """Delete or re-index each document, one line each; returns how many failed."""
    failed = 0
    for doc in docs:
        try:
            if action == "delete":
                removed = await delete_document(ingestor, viewer, doc)
                print(f"Deleted {doc.source} ({removed} chunks).")
            else:
                result = await reindex_document(ingestor, viewer, doc)
                failed += result.status == "failed"
                print(result.describe())
        except KnowledgeBaseError as exc:
            failed += 1
            print(f"{doc.source}: {exc}", file=sys.stderr)
    return failed


async def copy_all(settings: Settings, args: argparse.Namespace) -> int:
    """Every document, with its scope and owner, indexed from its kept original into another Milvus and/or
    collection: how a knowledge base moves from Milvus Lite to a server, or into a collection with the
    full-text index. The source is only read."""
    target = settings.model_copy(
        update={
            "milvus_uri": args.to_uri or settings.milvus_uri,
            "milvus_token": SecretStr(os.environ[args.to_token_env])
            if os.environ.get(args.to_token_env)
            else settings.milvus_token,
            "collection": args.to_collection or settings.collection,
        }
    )
    target = load_settings(**target.model_dump())  # validated like any settings
    if (target.milvus_uri, target.collection) == (settings.milvus_uri, settings.collection):
        print("Give --to-uri and/or --to-collection: that is the knowledge base itself.", file=sys.stderr)
        return 1
    async with open_knowledge_base(settings) as source:
        docs = await list_documents(Ingestor(source), None)
    async with open_knowledge_base(target) as kb:
        failed = await apply_each(Ingestor(kb), None, docs, "reindex")
        print(f"Copied {len(docs) - failed} of {len(docs)} documents into {target.collection} at {target.milvus_uri}.")
    return 2 if failed else 0


async def run(args: argparse.Namespace) -> int:
    settings = load_settings(**({"collection": args.collection} if args.collection else {}))
    if args.action == "copy":
        return await copy_all(settings, args)
    viewer = await acting_as(settings, args.as_user)
    async with open_knowledge_base(settings) as kb:
        ingestor = Ingestor(kb)
        if args.action == "list":
            docs = await list_documents(ingestor, viewer)
            if args.json:
                print(json.dumps([d.to_dict() for d in docs], ensure_ascii=False))
            else:
                print("\n".join(describe(d) for d in docs) or "No documents.")
            return 0
        docs = await list_documents(ingestor, viewer, manageable=True)
        targets = docs if args.action == "reindex" and args.all else pick(docs, args.name, args.scope, args.owner)
        if not targets:
            print(f"No document named '{args.name}' that {args.as_user or 'you'} can manage.", file=sys.stderr)
            return 1
        if args.action == "delete" and len(targets) > 1:
            print("Several documents have that name; add --scope and --owner:", file=sys.stderr)
            print("\n".join("  " + describe(d) for d in targets), file=sys.stderr)
            return 1
        return 2 if await apply_each(ingestor, viewer, targets, args.action) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ingest.manage", description="List, delete or re-index documents.")
    sub = parser.add_subparsers(dest="action", required=True)
    p_list = sub.add_parser("list", help="documents with scope, owner, chunks and date")
    p_list.add_argument("--json", action="store_true")
    p_delete = sub.add_parser("delete", help="delete a document and all its chunks")
    p_reindex = sub.add_parser("reindex", help="index a document again from its kept original")
    p_reindex.add_argument("--all", action="store_true", help="every document you can manage")
    for p in (p_delete, p_reindex):
        p.add_argument("name", nargs="?" if p is p_reindex else None, default="", help="the document's name")
        p.add_argument("--scope", choices=["team", "private"])
        p.add_argument("--owner", help="the owner of a private document")
    p_copy = sub.add_parser("copy", help="index every document again into another Milvus and/or collection")
    p_copy.add_argument("--to-uri", help="the target Milvus (default: the same as RAG_MILVUS_URI)")
    p_copy.add_argument(
        "--to-token-env",
        default="RAG_TARGET_MILVUS_TOKEN",
        help="the environment variable holding the target's token (default: %(default)s; else RAG_MILVUS_TOKEN)",
    )
    p_copy.add_argument("--to-collection", help="the target collection (default: RAG_COLLECTION)")
    for p in (p_list, p_delete, p_reindex):
        p.add_argument("--as", dest="as_user", help="act as this user, with their rights (default: operator)")
    for p in (p_list, p_delete, p_reindex, p_copy):
        p.add_argument("--collection", help="Milvus collection (default: RAG_COLLECTION)")
    args = parser.parse_args(argv)
    if args.action == "reindex" and not (args.all or args.name):
        parser.error("name a document, or use --all")
    return run_plainly(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
