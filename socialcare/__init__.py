"""What training, serving and the notebooks all need: the label set, the record schema,
text normalisation, reading and validating data files, and default paths."""
