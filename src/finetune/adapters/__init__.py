"""Parameter-efficient fine-tuning with ``peft`` (``conf/adapter/``): adapters attached by the module base for every
task (``attach``), adapter-only checkpoints (``state``), and the preflight's check (``check``)."""
