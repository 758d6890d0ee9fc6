"""What the rest of the code talks about: manifests, the image DAG and build options.

Pure data and parsing; nothing here reads the working tree, the network or
an engine.
"""
