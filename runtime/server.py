"""``python -m runtime.server``: the gRPC server (runtime.serving.server)."""

from runtime.serving.server import main

if __name__ == "__main__":
    main()
