"""Small picklable models for serving tests (pickled by reference: keep them importable)."""


class Proba:
    """Predicts class probabilities (a 2-D output)."""

    def __init__(self, model):
        self.model = model

    def predict(self, x):
        return self.model.predict_proba(x)


class Raises:
    """Raises inside predict when a row's ``amount`` is over 100, else predicts like ``model``."""

    def __init__(self, model):
        self.model = model

    def predict(self, x):
        if (x["amount"] > 100).any():
            raise ValueError("amount out of range")
        return self.model.predict(x)


class Tagged:
    """Answers its ``tag`` for every row, after ``delay`` seconds (a slow model in flight)."""

    def __init__(self, tag, delay=0.0):
        self.tag = tag
        self.delay = delay

    def predict(self, x):
        import time

        time.sleep(self.delay)
        return [self.tag] * len(x)


class Sets:
    """Predicts Python sets, which JSON cannot hold."""

    def predict(self, x):
        return [{1, 2}] * len(x)
