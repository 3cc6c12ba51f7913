"""The app layer: the ``fashionrec`` command and the demo, above the flows and the library."""
