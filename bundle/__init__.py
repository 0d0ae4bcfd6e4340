"""The bundle format, the contract between agent and server: paths, manifest, writer, reader, age.

May import: privacy (the writer redacts and lints what it writes); never agent, server, collectors.
"""
