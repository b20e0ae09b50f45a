"""The `keyless` command line: argparse, output formats, exit codes and prompts, over the client."""
