"""The ShapesWorld toy: a world (`shapes`), its detector (`detect`), GenEval-mini
(`geneval_mini`), the toy model (`model`), its base training (`train_base`) and the RecA
reproduction on it (`reproduce`)."""
