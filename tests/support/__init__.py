"""What the tests share: paths and the marks that skip without a fetched model or a built
engine (`paths`), tiny eval sets and config writers (`helpers`), real local servers
(`servers`)."""
