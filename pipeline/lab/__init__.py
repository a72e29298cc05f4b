"""The comparison lab: layouts run side by side (`compare`), their charts (`plots`), and the
stage checker (`stagecheck`)."""
