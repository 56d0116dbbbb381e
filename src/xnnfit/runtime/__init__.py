"""The LiteRT runtimes: interpreters built, fed, run and timed; other runtimes' venvs and their child."""
