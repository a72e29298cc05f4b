"""The comparison lab: layouts run side by side (`compare`, with `summary` and `comparetable`
for its medians and its table), their charts (`plots`, `timeline`), the stage checker
(`stagecheck`, `stageframes`, `gilmeter`), and the model that predicts layouts (`model`, fed by
`ingredients`, run by `forecast`)."""
