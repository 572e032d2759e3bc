"""`python -m services.console`. Like services.common.serve, plus one thing: at SIGTERM
or Ctrl-C the open live-update streams are ended first. uvicorn waits for open
responses before it shuts down, and an event stream never ends by itself."""

import uvicorn

from services.common import logs
from services.console.app import create_app
from services.console.settings import ConsoleSettings


class ConsoleServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, on_exit):
        super().__init__(config)
        self._on_exit = on_exit

    def handle_exit(self, sig, frame) -> None:
        self._on_exit()
        super().handle_exit(sig, frame)


def main() -> None:
    settings = ConsoleSettings()
    logs.configure("console", settings.log_level)
    app = create_app(settings)
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_config=None, access_log=False, timeout_graceful_shutdown=15
    )
    ConsoleServer(config, on_exit=app.state.broadcaster.close_soon).run()


if __name__ == "__main__":
    main()
