"""kner: Chinese NER on Keras 3."""
