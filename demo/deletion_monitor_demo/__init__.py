"""`make demo` and the harness the end-to-end tests share, not shipped in the product's wheel:
the demo application, the load generator and its scenarios, the local Slack/PagerDuty/email
sinks, a throwaway PostgreSQL cluster, and the stack that runs every real binary on 127.0.0.1
(`deletion-monitor-demo`)."""
