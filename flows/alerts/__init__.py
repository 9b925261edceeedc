"""Status alerts (Contract 5): the flow's state hooks, the payload, delivery to the webhook,
the schedule in words, and the automations that alert for runs killed with their process."""
