"""Generated protobuf code only. Rebuilt by `make proto`; never edit by hand."""
