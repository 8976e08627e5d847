"""Warning broadcasts (预警提示): who receives one (segments), its life from draft to done (lifecycle), and how
each resident's copy is delivered through the outbox (senders)."""
