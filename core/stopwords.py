"""The one stop-word list: left out of Milvus's full-text index and of the offline query and answer logic."""

# Milvus Lite knows only the standard tokenizer with lowercase and stop filters (no stemming, no "_english_"
# list), so the words are spelled out: a question's "what is the" must not match every chunk.
# fmt: off
STOP_WORDS: tuple[str, ...] = (
    "a", "about", "above", "after", "again", "against", "all", "also", "am", "an", "and", "any", "anything", "are",
    "aren't", "as", "at", "be", "because", "been", "before", "being", "below", "between", "both", "but", "by",
    "can", "can't", "cannot", "could", "couldn't", "did", "didn't", "do", "does", "doesn't", "doing", "don't",
    "down", "during", "each", "explain", "few", "for", "from", "further", "get", "got", "had", "hadn't", "has",
    "hasn't", "have", "haven't", "having", "he", "her", "here", "hers", "herself", "him", "himself", "his", "how",
    "i", "i'm", "if", "in", "into", "is", "isn't", "it", "it's", "its", "itself", "just", "know", "let's", "me",
    "more", "most", "my", "myself", "need", "no", "nor", "not", "of", "off", "on", "once", "only", "or", "other",
    "ought", "our", "ours", "ourselves", "out", "over", "own", "please", "same", "she", "should", "shouldn't",
    "so", "some", "something", "such", "tell", "than", "that", "that's", "the", "their", "theirs", "them",
    "themselves", "then", "there", "there's", "these", "they", "thing", "things", "this", "those", "through", "to",
    "too", "under", "until", "up", "use", "used", "using", "very", "want", "was", "wasn't", "way", "ways", "we",
    "were", "weren't", "what", "what's", "when", "where", "which", "while", "who", "whom", "why", "will", "with",
    "won't", "would", "wouldn't", "you", "your", "yours", "yourself", "yourselves",
)
# fmt: on
