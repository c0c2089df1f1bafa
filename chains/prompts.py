"""Every prompt the chains use, each with one purpose."""

from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder

CONDENSE = ChatPromptTemplate.from_messages(
    [
        (
            "system",
            "Rewrite the user's last message as one standalone question that can be understood "
            "without the conversation. Keep names and terms exactly. Reply with the question only.",
        ),
        MessagesPlaceholder("history"),
        ("human", "{question}"),
    ]
)

REWRITE = ChatPromptTemplate.from_messages(
    [
        (
            "system",
            "You write search queries for a document search engine. Given a question, write {n} "
            "different search queries that could find the passages answering it: use synonyms, "
            "the likely wording of documentation, and split compound questions. "
            "One query per line, no numbering, no commentary.",
        ),
        ("human", "{question}"),
    ]
)

ANSWER = ChatPromptTemplate.from_messages(
    [
        (
            "system",
            "You answer questions for a team using only the numbered sources below. "
            "Cite every claim with the source number in square brackets, like [1] or [2][3]. "
            "If the sources do not contain the answer, say so plainly and do not guess. "
            "Be concise.\n\nSources:\n{context}",
        ),
        MessagesPlaceholder("history"),
        ("human", "{question}"),
    ]
)
