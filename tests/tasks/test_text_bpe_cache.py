"""A text task's token streams are built once per process and shared read-only by every run that asks for them."""

from attnlab.tasks import Text


def test_the_same_text_is_tokenized_once_per_process_and_a_different_one_is_not_shared():
    a = Text(seq_len=16, max_bytes=20_000, tokenizer="bpe", bpe_vocab=300).build(0)
    b = Text(seq_len=32, max_bytes=20_000, tokenizer="bpe", bpe_vocab=300).build(1)
    c = Text(seq_len=16, max_bytes=20_000, tokenizer="bpe", bpe_vocab=320).build(0)
    assert a.train_inputs is b.train_inputs and a.tokenizer is b.tokenizer
    assert c.vocab_size != a.vocab_size and c.train_inputs is not a.train_inputs
