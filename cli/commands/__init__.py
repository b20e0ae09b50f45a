"""One module per `keyless` subcommand, each with `add_parser(subparsers)` and `run(args)`."""
