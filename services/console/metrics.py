from prometheus_client import CollectorRegistry, Counter


class ConsoleMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.actions = Counter(
            "e112_console_actions_total",
            "What operators did in the console, by action and outcome",
            ["action", "outcome"],
            registry=registry,
        )
        self.signins = Counter(
            "e112_console_signins_total",
            "Sign-in attempts by outcome (ok, wrong, locked)",
            ["outcome"],
            registry=registry,
        )
        self.signin_lockouts = Counter(
            "e112_console_signin_lockouts_total",
            "Sign-in locks set after wrong PINs, by scope: source (one address "
            "for one operator) or operator (the ceiling over every address)",
            ["scope"],
            registry=registry,
        )
