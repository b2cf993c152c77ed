# Times metafor on the datasets written by benchmarks/run.py; prints one JSON object.
#   Rscript benchmarks/bench_metafor.R DIR
suppressPackageStartupMessages({ library(metafor); library(jsonlite) })
dir <- commandArgs(trailingOnly = TRUE)[1]
best <- function(expr, n = 3) {
  f <- substitute(expr); env <- parent.frame()
  min(sapply(seq_len(n), function(i) system.time(eval(f, env))[["elapsed"]]))
}
out <- list(metafor = as.character(packageVersion("metafor")), R = R.version.string)
for (k in c(100, 1000, 4000)) {
  d <- read.csv(file.path(dir, sprintf("uni_%d.csv", k)))
  out[[sprintf("reml_%d", k)]] <- best(rma(yi, vi, data = d, method = "REML"), if (k >= 4000) 1 else 3)
}
d <- read.csv(file.path(dir, "uni_200.csv"))
fit <- rma(yi, vi, data = d, method = "REML")
out$loo_200 <- best(leave1out(fit), 1)
d <- read.csv(file.path(dir, "uni_100.csv"))
fit <- rma(yi, vi, data = d, method = "REML")
out$perm_100 <- best(permutest(fit, iter = 1000, progbar = FALSE), 1)
d <- read.csv(file.path(dir, "ml_900.csv"))
out$ml_900 <- best(rma.mv(yi, vi, random = ~ 1 | cluster/es, data = d), 1)
d <- read.csv(file.path(dir, "education.csv"))
out$ml_education <- best(rma.mv(yi, vi, random = ~ 1 | cluster/es, data = d), 1)
cat(toJSON(out, auto_unbox = TRUE, digits = NA))
