"""Live steering: human and provider notes relayed to a ticket's active agents."""
