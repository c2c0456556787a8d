"""The method itself: templates, slot-aware tokenisation, the frozen LLM and pooling, as one ST module."""
