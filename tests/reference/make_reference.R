# Reference values from R's metafor (and clubSandwich), written as JSON fixtures that the tests
# compare with, so CI needs no R.
#
#   apt-get install -y r-base-core r-cran-metafor r-cran-metadat r-cran-clubsandwich r-cran-jsonlite
#   Rscript tests/reference/make_reference.R        # from the repository root; or: make reference
#
# Inputs are the real datasets in ../shared/data/ (copied into each fixture, so the tests do not
# depend on that folder) and seeded synthetic data covering every measure and estimator.
# Iterative estimates are run with tight convergence controls so that the fixtures hold the
# converged values, not metafor's default stopping point.

suppressPackageStartupMessages({
  library(metafor)
  library(jsonlite)
})

shared <- Sys.getenv("SHARED_DATA", "../shared/data")
out_dir <- "tests/reference"
read <- function(name) read.csv(file.path(shared, name), na.strings = "", stringsAsFactors = FALSE)
tight <- list(threshold = 1e-13, maxiter = 10000, tol = 1e-13)
num <- function(x) if (is.null(x)) NA else unname(as.numeric(x))

write_fixture <- function(x, name) {
  path <- file.path(out_dir, paste0(name, ".json"))
  writeLines(toJSON(x, digits = NA, auto_unbox = TRUE, na = "null", pretty = TRUE), path)
  cat("wrote", path, "\n")
}

versions <- list(R = R.version.string, metafor = as.character(packageVersion("metafor")))

# ------------------------------------------------------------------------------ escalc
set.seed(20261126)
k <- 12
n1 <- sample(8:80, k, replace = TRUE); n2 <- sample(8:80, k, replace = TRUE)
m1 <- round(rnorm(k, 12, 3), 2); m2 <- round(rnorm(k, 11, 3), 2)
s1 <- round(runif(k, 1, 5), 2); s2 <- round(runif(k, 1, 5), 2)
ai <- rbinom(k, n1, 0.3); ci <- rbinom(k, n2, 0.4)
ai[1] <- 0; ci[2] <- 0; ai[3] <- n1[3]
ri <- round(runif(k, -0.8, 0.9), 3); ni <- sample(10:200, k, replace = TRUE)
xi <- rbinom(k, ni, 0.2); xi[1] <- 0; xi[2] <- ni[2]
syn <- data.frame(m1i = m1, sd1i = s1, n1i = n1, m2i = m2, sd2i = s2, n2i = n2,
                  ai = ai, bi = n1 - ai, ci = ci, di = n2 - ci, ri = ri, ni = ni, xi = xi)

esc <- list()
add_esc <- function(name, measure, data, args) {
  r <- do.call(escalc, c(list(measure = measure), args))
  esc[[length(esc) + 1]] <<- list(name = name, measure = measure, data = data,
                                 yi = num(r$yi), vi = num(r$vi))
}
for (m in c("SMD", "MD", "ROM")) {
  add_esc(paste0("synthetic_", m), m, syn[c("m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i")],
          list(m1i = m1, sd1i = s1, n1i = n1, m2i = m2, sd2i = s2, n2i = n2))
}
for (m in c("OR", "RR", "RD")) {
  add_esc(paste0("synthetic_", m), m, syn[c("ai", "bi", "ci", "di")],
          list(ai = syn$ai, bi = syn$bi, ci = syn$ci, di = syn$di))
}
for (m in c("COR", "ZCOR")) add_esc(paste0("synthetic_", m), m, syn[c("ri", "ni")],
                                    list(ri = ri, ni = ni))
for (m in c("PR", "PLO")) add_esc(paste0("synthetic_", m), m, syn[c("xi", "ni")],
                                  list(xi = xi, ni = ni))

bcg <- read("colditz1994_bcg_vaccine_2x2.csv")
for (m in c("RR", "OR", "RD")) {
  add_esc(paste0("bcg_", m), m,
          data.frame(ai = bcg$tpos, bi = bcg$tneg, ci = bcg$cpos, di = bcg$cneg),
          list(ai = bcg$tpos, bi = bcg$tneg, ci = bcg$cpos, di = bcg$cneg))
}
mol <- read("molloy2014_conscientiousness_medication_adherence.csv")
for (m in c("COR", "ZCOR")) add_esc(paste0("molloy_", m), m, mol[c("ri", "ni")],
                                    list(ri = mol$ri, ni = mol$ni))
# the unbiased correlation (Olkin & Pratt, 1958; metafor needs the gsl package for it)
add_esc("molloy_UCOR", "UCOR", mol[c("ri", "ni")], list(ri = mol$ri, ni = mol$ni))
add_esc("synthetic_UCOR", "UCOR", syn[c("ri", "ni")], list(ri = ri, ni = ni))

# Measures added for economics, education and health reviews (issue 13): partial and
# semi-partial correlations from regression t-statistics (metadat's dat.aloe2013), pre-post
# standardised mean changes and the heteroscedastic SMD (seeded synthetic data), incidence
# rates (dat.hart1999), transformed proportions (dat.pritz1997 and synthetic ones with 0 and
# n events), Peto's log odds ratio and the phi coefficient (bcg and synthetic tables with zeros)
aloe <- metadat::dat.aloe2013
for (m in c("PCOR", "ZPCOR")) add_esc(paste0("aloe_", m), m,
                                      data.frame(ti = aloe$tval, ni = aloe$n, mi = aloe$preds),
                                      list(ti = aloe$tval, ni = aloe$n, mi = aloe$preds))
add_esc("aloe_SPCOR", "SPCOR",
        data.frame(ti = aloe$tval, ni = aloe$n, mi = aloe$preds, r2i = aloe$R2),
        list(ti = aloe$tval, ni = aloe$n, mi = aloe$preds, r2i = aloe$R2))
set.seed(20261127)
pp <- data.frame(m1i = round(rnorm(k, 14, 3), 2), m2i = round(rnorm(k, 12, 3), 2),
                 sd1i = round(runif(k, 2, 6), 2), sd2i = round(runif(k, 2, 6), 2),
                 ni = sample(10:90, k, replace = TRUE), ri = round(runif(k, 0.2, 0.9), 2))
add_esc("synthetic_SMCC", "SMCC", pp, as.list(pp))
add_esc("synthetic_SMCR", "SMCR", pp[c("m1i", "m2i", "sd1i", "ni", "ri")],
        as.list(pp[c("m1i", "m2i", "sd1i", "ni", "ri")]))
add_esc("synthetic_SMDH", "SMDH", syn[c("m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i")],
        list(m1i = m1, sd1i = s1, n1i = n1, m2i = m2, sd2i = s2, n2i = n2))
hart <- metadat::dat.hart1999
for (m in c("IRR", "IRD")) add_esc(paste0("hart_", m), m, hart[c("x1i", "x2i", "t1i", "t2i")],
                                   as.list(hart[c("x1i", "x2i", "t1i", "t2i")]))
rates <- data.frame(xi = c(hart$x1i, 0), ti = c(hart$t1i, 120))
for (m in c("IR", "IRLN")) add_esc(paste0("hart_", m), m, rates, as.list(rates))
pritz <- metadat::dat.pritz1997
for (m in c("PLN", "PAS", "PFT")) {
  add_esc(paste0("pritz_", m), m, pritz[c("xi", "ni")], as.list(pritz[c("xi", "ni")]))
  add_esc(paste0("synthetic_", m), m, syn[c("xi", "ni")], list(xi = xi, ni = ni))
}
for (m in c("PETO", "PHI")) {
  add_esc(paste0("bcg_", m), m,
          data.frame(ai = bcg$tpos, bi = bcg$tneg, ci = bcg$cpos, di = bcg$cneg),
          list(ai = bcg$tpos, bi = bcg$tneg, ci = bcg$cpos, di = bcg$cneg))
  add_esc(paste0("synthetic_", m), m, syn[c("ai", "bi", "ci", "di")],
          list(ai = syn$ai, bi = syn$bi, ci = syn$ci, di = syn$di))
}

# Conversions of reported estimates, as metafor 4's conv.wald() computes them (metafor 3.8,
# Debian's version, has no conv.wald): ratio with a 95% CI, difference with a p-value.
est <- data.frame(estimate = c(0.8, 1.3, 2.1), ci_lb = c(0.6, 0.9, 1.2), ci_ub = c(1.07, 1.88, 3.67))
sei <- (log(est$ci_ub) - log(est$ci_lb)) / (2 * qnorm(0.975))
esc[[length(esc) + 1]] <- list(name = "wald_ratio_ci", measure = "RR", data = est,
                               yi = log(est$estimate), vi = sei^2)
estp <- data.frame(estimate = c(2.5, -1.2, 0.4), pval = c(0.03, 0.2, 0.0004))
sei <- abs(estp$estimate) / qnorm(estp$pval / 2, lower.tail = FALSE)
esc[[length(esc) + 1]] <- list(name = "wald_pval", measure = "MD", data = estp,
                               yi = estp$estimate, vi = sei^2)
write_fixture(list(versions = versions, cases = esc), "escalc")

# ------------------------------------------------------------------------------ rma
bcg_rr <- escalc("RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = bcg)
rau <- read("raudenbush1985_teacher_expectancy_iq.csv")
rau$weeks3 <- pmin(rau$weeks, 3)
mol_z <- escalc("ZCOR", ri = ri, ni = ni, data = mol)
set.seed(7)
homog <- data.frame(yi = round(rnorm(10, 0.3, 0.02), 4), vi = round(runif(10, 0.01, 0.05), 4))

datasets <- list(
  bcg = list(yi = num(bcg_rr$yi), vi = num(bcg_rr$vi),
             mods = list(ablat = bcg$ablat, alloc = bcg$alloc, year = bcg$year)),
  raudenbush = list(yi = rau$yi, vi = rau$vi, mods = list(weeks3 = rau$weeks3,
                                                         tester = rau$tester)),
  molloy = list(yi = num(mol_z$yi), vi = num(mol_z$vi), mods = list(meanage = mol$meanage)),
  homogeneous = list(yi = homog$yi, vi = homog$vi, mods = list()),
  two = list(yi = num(bcg_rr$yi[1:2]), vi = num(bcg_rr$vi[1:2]), mods = list())
)

summarise <- function(fit, qp = TRUE) {
  out <- list(beta = num(fit$beta), se = num(fit$se), pval = num(fit$pval),
              ci_lb = num(fit$ci.lb), ci_ub = num(fit$ci.ub), tau2 = num(fit$tau2),
              Q = num(fit$QE), Q_pvalue = num(fit$QEp), I2 = num(fit$I2), H2 = num(fit$H2),
              QM = num(fit$QM), QM_pvalue = num(fit$QMp), R2 = num(fit$R2), k = fit$k)
  if (fit$p == 1) {
    pr <- predict(fit)
    out$pi_lb <- num(pr$pi.lb); out$pi_ub <- num(pr$pi.ub)
  }
  if (qp && !fit$method %in% c("FE", "EE") && fit$k - fit$p >= 1) {
    ci <- confint(fit, control = list(tol = 1e-13, maxiter = 10000, tau2.max = 1e6))
    out$tau2_ci <- num(ci$random["tau^2", c("ci.lb", "ci.ub")])
  }
  out
}

fits <- list()
for (dname in names(datasets)) {
  d <- datasets[[dname]]
  for (method in c("FE", "DL", "REML", "ML", "PM", "SJ", "HE", "HS", "EB")) {
    for (test in c("z", "knha")) {
      fit <- rma(d$yi, d$vi, method = method, test = test, control = tight)
      fits[[length(fits) + 1]] <- c(list(data = dname, method = method, test = test,
                                         mods = list()), summarise(fit))
      for (mname in names(d$mods)) {
        x <- d$mods[[mname]]
        fit <- rma(d$yi, d$vi, mods = ~ x, method = method, test = test, control = tight)
        fits[[length(fits) + 1]] <- c(list(data = dname, method = method, test = test,
                                           mods = list(mname)), summarise(fit))
      }
    }
  }
}
# data on which metafor's Fisher scoring oscillates (it stops with an error): the fixtures
# use its documented remedy, a step adjustment, to get the estimates
osc <- list(yi = c(0, 0, 0, 0, 0, 1.5), vi = c(1, 1, 1, 1, 1, 0.25))
for (method in c("REML", "ML", "EB")) {
  fit <- rma(osc$yi, osc$vi, method = method,
             control = list(stepadj = 0.5, threshold = 1e-13, maxiter = 100000))
  fits[[length(fits) + 1]] <- c(list(data = "oscillating", method = method, test = "z",
                                     mods = list()), summarise(fit))
}
datasets$oscillating <- c(osc, list(mods = list()))
write_fixture(list(versions = versions, datasets = datasets, fits = fits), "rma")

# ------------------------------------------------------------------------------ 2x2 models
bcg2 <- data.frame(ai = bcg$tpos, bi = bcg$tneg, ci = bcg$cpos, di = bcg$cneg)
set.seed(11)
sparse <- data.frame(ai = c(0, 2, 1, 0, 5, 3), n1i = c(20, 35, 18, 40, 60, 25),
                     ci = c(0, 4, 3, 2, 9, 0), n2i = c(22, 30, 20, 41, 58, 27))
sparse$bi <- sparse$n1i - sparse$ai; sparse$di <- sparse$n2i - sparse$ci
binfits <- list()
for (dname in c("bcg", "sparse")) {
  d <- if (dname == "bcg") bcg2 else sparse[c("ai", "bi", "ci", "di")]
  for (m in c("OR", "RR", "RD")) {
    f <- rma.mh(ai = d$ai, bi = d$bi, ci = d$ci, di = d$di, measure = m)
    binfits[[length(binfits) + 1]] <- list(data = dname, method = "MH", measure = m,
      beta = num(f$beta), se = num(f$se), ci_lb = num(f$ci.lb), ci_ub = num(f$ci.ub),
      pval = num(f$pval), Q = num(f$QE), Q_pvalue = num(f$QEp), I2 = num(f$I2), H2 = num(f$H2))
  }
  f <- rma.peto(ai = d$ai, bi = d$bi, ci = d$ci, di = d$di)
  binfits[[length(binfits) + 1]] <- list(data = dname, method = "PETO", measure = "OR",
      beta = num(f$beta), se = num(f$se), ci_lb = num(f$ci.lb), ci_ub = num(f$ci.ub),
      pval = num(f$pval), Q = num(f$QE), Q_pvalue = num(f$QEp), I2 = num(f$I2), H2 = num(f$H2))
}
write_fixture(list(versions = versions, datasets = list(bcg = bcg2, sparse = sparse[c("ai", "bi", "ci", "di")]),
                   fits = binfits), "binary")

# ------------------------------------------------------------------------------ bias and sensitivity
sens <- list()
for (dname in c("bcg", "raudenbush", "molloy")) {
  d <- datasets[[dname]]
  for (method in c("REML", "DL", "FE")) {
    fit <- rma(d$yi, d$vi, method = method, control = tight)
    eg <- regtest(fit)
    rk <- ranktest(fit)
    tf <- trimfill(fit)
    l1 <- leave1out(fit)
    inf <- influence(fit)
    sens[[length(sens) + 1]] <- list(
      data = dname, method = method, mods = list(),
      egger_z = num(eg$zval), egger_p = num(eg$pval), begg_tau = num(rk$tau),
      begg_p = num(rk$pval), trimfill_k0 = tf$k0, trimfill_side = tf$side,
      trimfill_estimate = num(tf$beta), trimfill_se = num(tf$se), trimfill_tau2 = num(tf$tau2),
      l1o_estimate = num(l1$estimate), l1o_se = num(l1$se), l1o_tau2 = num(l1$tau2),
      l1o_I2 = num(l1$I2), l1o_Q = num(l1$Q),
      rstudent = num(inf$inf$rstudent), dffits = num(inf$inf$dffits), cook_d = num(inf$inf$cook.d),
      cov_r = num(inf$inf$cov.r), tau2_del = num(inf$inf$tau2.del), QE_del = num(inf$inf$QE.del),
      hat = num(inf$inf$hat), weight = num(inf$inf$weight), influential = as.logical(inf$is.infl))
  }
}
# with a moderator: influence on the bcg meta-regression
fit <- rma(datasets$bcg$yi, datasets$bcg$vi, mods = ~ datasets$bcg$mods$ablat, control = tight)
inf <- influence(fit)
sens[[length(sens) + 1]] <- list(data = "bcg", method = "REML", mods = list("ablat"),
  rstudent = num(inf$inf$rstudent), dffits = num(inf$inf$dffits), cook_d = num(inf$inf$cook.d),
  cov_r = num(inf$inf$cov.r), tau2_del = num(inf$inf$tau2.del), QE_del = num(inf$inf$QE.del),
  hat = num(inf$inf$hat), weight = num(inf$inf$weight), influential = as.logical(inf$is.infl))

# cumulative by year (bcg), REML
fit <- rma(datasets$bcg$yi, datasets$bcg$vi, control = tight)
cu <- cumul(fit, order = bcg$year)
cumulative <- list(order = bcg$year, estimate = num(cu$estimate), se = num(cu$se),
                   tau2 = num(cu$tau2), I2 = num(cu$I2))

# exact permutation tests: intercept only (k = 8) and one moderator (k = 6)
d8 <- list(yi = datasets$bcg$yi[1:8], vi = datasets$bcg$vi[1:8])
p8 <- permutest(rma(d8$yi, d8$vi, control = tight), progbar = FALSE)
d6 <- list(yi = datasets$bcg$yi[1:6], vi = datasets$bcg$vi[1:6], x = bcg$ablat[1:6])
p6 <- permutest(rma(d6$yi, d6$vi, mods = ~ d6$x, control = tight), progbar = FALSE)
perm <- list(intercept = c(d8, list(pval = num(p8$pval))),
             moderator = c(d6, list(pval = num(p6$pval), QMp = num(p6$QMp))))
write_fixture(list(versions = versions, sensitivity = sens, cumulative = cumulative,
                   permutation = perm), "sensitivity")

# ------------------------------------------------------------------------------ three-level
kon <- read("konstantopoulos2011_modified_school_calendars.csv")
ml <- list()
for (test in c("z", "t")) {
  f <- rma.mv(yi, vi, random = ~ 1 | district/school, data = kon, test = test,
              control = list(rel.tol = 1e-10, iter.max = 10000, eval.max = 10000))
  ml[[length(ml) + 1]] <- list(mods = list(), test = test, beta = num(f$beta), se = num(f$se),
    pval = num(f$pval), ci_lb = num(f$ci.lb), ci_ub = num(f$ci.ub), sigma2 = num(f$sigma2),
    Q = num(f$QE), Q_pvalue = num(f$QEp), QM = num(f$QM), QM_pvalue = num(f$QMp))
  f <- rma.mv(yi, vi, mods = ~ year, random = ~ 1 | district/school, data = kon, test = test,
              control = list(rel.tol = 1e-10, iter.max = 10000, eval.max = 10000))
  ml[[length(ml) + 1]] <- list(mods = list("year"), test = test, beta = num(f$beta), se = num(f$se),
    pval = num(f$pval), ci_lb = num(f$ci.lb), ci_ub = num(f$ci.ub), sigma2 = num(f$sigma2),
    Q = num(f$QE), Q_pvalue = num(f$QEp), QM = num(f$QM), QM_pvalue = num(f$QMp))
}
# the same three-level model by maximum likelihood (method = "ML")
ml_fits <- list()
for (mods in list(list(), list("year"))) {
  f <- if (length(mods)) {
    rma.mv(yi, vi, mods = ~ year, random = ~ 1 | district/school, data = kon, method = "ML",
           control = list(rel.tol = 1e-10, iter.max = 10000, eval.max = 10000))
  } else rma.mv(yi, vi, random = ~ 1 | district/school, data = kon, method = "ML",
                control = list(rel.tol = 1e-10, iter.max = 10000, eval.max = 10000))
  r <- update(f, method = "REML")
  ml_fits[[length(ml_fits) + 1]] <- list(mods = mods, beta = num(f$beta), se = num(f$se),
    sigma2 = num(f$sigma2), logLik = num(logLik(f)), fitstats = num(fitstats(f)),
    reml_fitstats = num(fitstats(r)))
}
write_fixture(list(versions = versions,
                   data = list(yi = kon$yi, vi = kon$vi, district = kon$district,
                               school = kon$school, year = kon$year), fits = ml,
                   ml_fits = ml_fits), "multilevel")

# ------------------------------------------------------------------------------ CHE + CR2 (clubSandwich)
suppressPackageStartupMessages(library(clubSandwich))
dal <- read("dalgaard2025_group_based_social_reintegration.csv")
dal <- dal[!is.na(dal$gt) & !is.na(dal$vgt), ]
dal$esid <- seq_len(nrow(dal))
dal$rct <- as.numeric(dal$design == "RCT")
rve <- list()
for (m in list(NULL, "rct")) {
  V <- impute_covariance_matrix(dal$vgt, cluster = dal$studyid, r = 0.6)
  if (is.null(m)) {
    f <- rma.mv(gt, V, random = ~ 1 | studyid/esid, data = dal,
                control = list(rel.tol = 1e-10, iter.max = 10000, eval.max = 10000))
  } else {
    f <- rma.mv(gt, V, mods = ~ rct, random = ~ 1 | studyid/esid, data = dal,
                control = list(rel.tol = 1e-10, iter.max = 10000, eval.max = 10000))
  }
  ct <- coef_test(f, vcov = "CR2", test = "Satterthwaite")
  ci <- conf_int(f, vcov = "CR2")
  rve[[length(rve) + 1]] <- list(mods = if (is.null(m)) list() else list(m),
    beta = num(f$beta), se_model = num(f$se), sigma2 = num(f$sigma2),
    se = num(ct$SE), df = num(ct$df_Satt), pval = num(ct$p_Satt),
    ci_lb = num(ci$CI_L), ci_ub = num(ci$CI_U))
}
write_fixture(list(versions = c(versions, clubSandwich = as.character(packageVersion("clubSandwich"))),
                   data = list(yi = dal$gt, vi = dal$vgt, studyid = dal$studyid, rct = dal$rct),
                   fits = rve), "rve")

# ------------------------------------------------------------------------------ subgroups
sg <- list()
for (method in c("REML", "DL")) {
  d <- data.frame(yi = num(bcg_rr$yi), vi = num(bcg_rr$vi), alloc = bcg$alloc)
  per <- lapply(split(d, d$alloc), function(s) rma(yi, vi, data = s, method = method, control = tight))
  est <- sapply(per, function(f) num(f$beta)); se <- sapply(per, function(f) num(f$se))
  sep <- rma(est, sei = se, mods = ~ names(per), method = "FE")
  mixed <- rma(yi, vi, mods = ~ alloc, data = d, method = method, control = tight)
  sg[[length(sg) + 1]] <- list(method = method, groups = names(per), estimate = num(est),
    se = num(se), tau2 = num(sapply(per, function(f) f$tau2)),
    Q_between = num(sep$QM), Q_between_p = num(sep$QMp), QM = num(mixed$QM), QMp = num(mixed$QMp))
}
write_fixture(list(versions = versions, data = list(yi = num(bcg_rr$yi), vi = num(bcg_rr$vi),
                                                    alloc = bcg$alloc), fits = sg), "subgroups")

# ------------------------------------------------------------------------------ the themes' headline results
# Each theme's headline model, fitted by metafor/clubSandwich on the source CSV directly.
bach <- read("bachmann2010_geriatric_inpatient_rehabilitation.csv")
fun <- subset(bach, outcome == "function" & time == "discharge" & !is.na(or))
fun_sei <- (log(fun$ub) - log(fun$lb)) / (2 * qnorm(0.975))
f_fun <- rma(log(fun$or), fun_sei^2, method = "REML", control = tight)
mort <- subset(bach, outcome == "mortality" & time == "followup" & !is.na(ai))
e_mort <- escalc("RR", ai = ai, n1i = n1i, ci = ci, n2i = n2i, data = mort)
f_mort <- rma(yi, vi, data = e_mort, method = "REML", control = tight)
fof <- read("cochrane_cd014666_fear_of_falling_cbt_older_people.csv")
fof <- subset(fof, Analysis.group == 1 & Analysis.number == 1)
e_fof <- escalc("SMD", m1i = Experimental.mean, sd1i = Experimental.SD, n1i = Experimental.N,
                m2i = Control.mean, sd2i = Control.SD, n2i = Control.N, data = fof)
f_fof <- rma(yi, vi, data = e_fof, method = "REML", control = tight)
che_fit <- function(yi, vi, cluster) {
  V <- impute_covariance_matrix(vi, cluster = cluster, r = 0.6)
  es <- seq_along(yi)
  f <- rma.mv(yi, V, random = ~ 1 | cluster/es,
              control = list(rel.tol = 1e-10, iter.max = 10000, eval.max = 10000))
  ct <- coef_test(f, vcov = "CR2", test = "Satterthwaite")
  list(estimate = num(f$beta), se = num(ct$SE), df = num(ct$df_Satt), sigma2 = num(f$sigma2), k = length(yi))
}
reint <- subset(dal, outcome_construct == "Reintegrational outcome")
diet <- read("dietrichson2021_targeted_school_interventions_k6.csv")
reading <- subset(diet, Test_subject == "Reading")
themes <- list(
  autonomy_function = list(estimate = num(f_fun$beta), se = num(f_fun$se), tau2 = num(f_fun$tau2), k = f_fun$k),
  autonomy_mortality = list(estimate = num(f_mort$beta), se = num(f_mort$se), tau2 = num(f_mort$tau2), k = f_mort$k),
  autonomy_fear = list(estimate = num(f_fof$beta), se = num(f_fof$se), tau2 = num(f_fof$tau2), k = f_fof$k),
  employment_reintegration = che_fit(reint$gt, reint$vgt, reint$studyid),
  education_reading = che_fit(reading$Effectsize_g, reading$SE_g^2, reading$Study_ID))
write_fixture(list(versions = c(versions, clubSandwich = as.character(packageVersion("clubSandwich"))),
                   themes = themes), "themes")

# ------------------------------------------------------------------------------ refits of 2x2 models, escalc options
# Issue 13's wrong-number bugs: leave-one-out and cumulative of MH/Peto fits refit the same
# method; MH/Peto weights are metafor's own; a deletion that leaves a moderator all zero is NA;
# escalc's add/to/drop00/include are applied.
refits <- list()
sparse4 <- sparse[c("ai", "bi", "ci", "di")]
for (dname in c("bcg", "sparse")) {
  d <- if (dname == "bcg") bcg2 else sparse4
  order <- if (dname == "bcg") bcg$year else c(2004, 2001, 2010, 1999, 2003, 2001)
  for (m in c("OR", "RR", "RD", "PETO")) {
    f <- if (m == "PETO") rma.peto(ai = d$ai, bi = d$bi, ci = d$ci, di = d$di) else
      rma.mh(ai = d$ai, bi = d$bi, ci = d$ci, di = d$di, measure = m)
    l1 <- leave1out(f)
    cu <- cumul(f, order = order)
    refits[[length(refits) + 1]] <- list(data = dname, method = if (m == "PETO") "PETO" else "MH",
      measure = if (m == "PETO") "OR" else m, order = order, weights = num(weights(f)),
      l1o_estimate = num(l1$estimate), l1o_se = num(l1$se), l1o_Q = num(l1$Q),
      l1o_ci_lb = num(l1$ci.lb), l1o_ci_ub = num(l1$ci.ub),
      cumul_estimate = num(cu$estimate), cumul_se = num(cu$se))
  }
}
# a study with its own dummy: deleting it leaves the moderator all zero (metafor: NA row)
own <- as.numeric(seq_len(nrow(bcg)) == 3)
fo <- rma(datasets$bcg$yi, datasets$bcg$vi, mods = ~ datasets$bcg$mods$ablat + own, control = tight)
# (metafor 3.8's leave1out() takes no moderators; influence() deletes each study in turn)
info <- suppressWarnings(influence(fo))
own_dummy <- list(own = own, ablat = datasets$bcg$mods$ablat,
                  cook_d = num(info$inf$cook.d), rstudent = num(info$inf$rstudent),
                  dffits = num(info$inf$dffits), tau2_del = num(info$inf$tau2.del))
# escalc options on the sparse tables and on proportions with zero cells
opts <- list()
sp <- sparse4
props <- data.frame(xi = c(0, 3, 10, 7), ni = c(15, 20, 10, 30))
for (m in c("OR", "RR", "RD")) {
  for (o in list(list(add = 0.25, to = "only0"), list(add = 1/2, to = "all"),
                 list(add = 1/2, to = "if0all"), list(add = 1/2, to = "none"),
                 list(add = 1/2, to = "only0", drop00 = TRUE))) {
    r <- suppressWarnings(do.call(escalc, c(list(measure = m, ai = sp$ai, bi = sp$bi,
                                                 ci = sp$ci, di = sp$di), o)))
    opts[[length(opts) + 1]] <- list(measure = m, options = o, yi = num(r$yi), vi = num(r$vi))
  }
}
for (m in c("PR", "PLO")) {
  for (o in list(list(add = 0.25, to = "only0"), list(add = 1/2, to = "all"),
                 list(add = 1/2, to = "none"))) {
    r <- suppressWarnings(do.call(escalc, c(list(measure = m, xi = props$xi, ni = props$ni), o)))
    opts[[length(opts) + 1]] <- list(measure = m, options = o, yi = num(r$yi), vi = num(r$vi))
  }
}
# fitstats (logLik, deviance, AIC, BIC, AICc) of the univariate model, with and without a
# moderator, on the real datasets
fstats <- list()
for (dname in c("bcg", "raudenbush", "molloy")) {
  d <- datasets[[dname]]
  for (method in c("REML", "ML", "FE", "DL", "PM")) {
    f <- rma(d$yi, d$vi, method = method, control = tight)
    fstats[[length(fstats) + 1]] <- list(data = dname, method = method, mods = list(),
                                         fitstats = num(fitstats(f)))
  }
}
for (method in c("REML", "ML")) {
  f <- rma(datasets$bcg$yi, datasets$bcg$vi, mods = ~ datasets$bcg$mods$ablat, method = method,
           control = tight)
  fstats[[length(fstats) + 1]] <- list(data = "bcg", method = method, mods = list("ablat"),
                                       fitstats = num(fitstats(f)))
}
# anova(res, btt = ...): Wald tests of subsets of coefficients (btt as 0-based positions here)
wald <- list()
b <- datasets$bcg
for (test in c("z", "knha")) {
  f <- rma(b$yi, b$vi, mods = ~ factor(b$mods$alloc) + b$mods$ablat + b$mods$year,
           test = test, control = tight)
  for (btt in list(c(2, 3), 4, c(4, 5), c(2, 3, 4, 5))) {
    a <- anova(f, btt = btt)
    wald[[length(wald) + 1]] <- list(test = test, btt = btt - 1, QM = num(a$QM),
                                     QMdf = num(a$QMdf), QMp = num(a$QMp))
  }
}
write_fixture(list(versions = versions, sparse = sparse4, proportions = props, fits = refits,
                   own_dummy = own_dummy, escalc_options = opts, fitstats = fstats,
                   wald = wald), "refits")

# ------------------------------------------------------------------------------ diagnostics
# blup, ranef, rstandard, rstudent, fitted, residuals, confint (Q-profile), regtest with the
# limit estimate, fsn: on bcg (RR) and raudenbush (SMD), intercept-only and with a moderator
diag_fits <- list()
bcg_ni <- bcg$tpos + bcg$tneg + bcg$cpos + bcg$cneg
specs <- list(
  list(data = "bcg", method = "REML", test = "z", mods = list()),
  list(data = "bcg", method = "DL", test = "knha", mods = list()),
  list(data = "bcg", method = "FE", test = "z", mods = list()),
  list(data = "bcg", method = "REML", test = "knha", mods = list("ablat")),
  list(data = "bcg", method = "ML", test = "z", mods = list("ablat")),
  list(data = "raudenbush", method = "REML", test = "z", mods = list()),
  list(data = "molloy", method = "PM", test = "z", mods = list()))
lst <- function(x) list(pred = num(x$pred), se = num(x$se), pi.lb = num(x$pi.lb), pi.ub = num(x$pi.ub))
for (s in specs) {
  d <- datasets[[s$data]]
  f <- if (length(s$mods)) {
    rma(d$yi, d$vi, mods = ~ d$mods[[s$mods[[1]]]], method = s$method, test = s$test,
        control = tight)
  } else rma(d$yi, d$vi, method = s$method, test = s$test, control = tight)
  rs <- rstandard(f); rt <- rstudent(f)
  out <- c(s, list(blup = lst(blup(f)), ranef = if (s$method == "FE") NULL else lst(ranef(f)),
                   rstandard = list(resid = num(rs$resid), se = num(rs$se), z = num(rs$z)),
                   rstudent = list(resid = num(rt$resid), se = num(rt$se), z = num(rt$z)),
                   fitted = num(fitted(f)), resid = num(residuals(f))))
  if (s$method != "FE" && length(s$mods) == 0) {
    ci <- confint(f, control = tight)$random
    out$confint <- list(rows = rownames(ci), estimate = num(ci[, 1]), ci_lb = num(ci[, 2]),
                        ci_ub = num(ci[, 3]))
  }
  diag_fits[[length(diag_fits) + 1]] <- out
}
regtests <- list()
for (pred in c("sei", "vi", "ni", "ninv")) {
  for (test in c("z", "knha")) {
    f <- rma(datasets$bcg$yi, datasets$bcg$vi, ni = bcg_ni, test = test, control = tight)
    r <- regtest(f, predictor = pred)
    regtests[[length(regtests) + 1]] <- list(predictor = pred, test = test, zval = num(r$zval),
                                             pval = num(r$pval), dfs = num(r$dfs),
                                             est = num(r$est), ci_lb = num(r$ci.lb),
                                             ci_ub = num(r$ci.ub))
  }
}
fsns <- list()
for (dname in c("bcg", "raudenbush")) {
  d <- datasets[[dname]]
  for (o in list(list(type = "Rosenthal"), list(type = "Rosenthal", alpha = 0.01),
                 list(type = "Orwin"), list(type = "Orwin", target = 0.05),
                 list(type = "Orwin", weighted = TRUE), list(type = "Rosenberg"))) {
    r <- do.call(fsn, c(list(yi = d$yi, vi = d$vi), o))
    fsns[[length(fsns) + 1]] <- list(data = dname, options = o, fsnum = num(r$fsnum),
                                     pval = num(r$pval), meanes = num(r$meanes),
                                     target = num(r$target))
  }
}
# se of tau^2 for each estimator (metafor's se.tau2), with and without a moderator
se_tau2 <- list()
for (dname in c("bcg", "raudenbush")) {
  d <- datasets[[dname]]
  for (method in c("REML", "ML", "DL", "HS", "HE", "EB", "PM", "SJ")) {
    f <- rma(d$yi, d$vi, method = method, control = tight)
    se_tau2[[length(se_tau2) + 1]] <- list(data = dname, method = method, mods = list(),
                                           tau2 = num(f$tau2), se_tau2 = num(f$se.tau2))
    if (dname == "bcg") {
      f <- rma(d$yi, d$vi, mods = ~ d$mods$ablat, method = method, control = tight)
      se_tau2[[length(se_tau2) + 1]] <- list(data = dname, method = method,
                                             mods = list("ablat"), tau2 = num(f$tau2),
                                             se_tau2 = num(f$se.tau2))
    }
  }
}
# anova(res, X = ...): linear combinations of the coefficients; anova(full, reduced): LRT
contrasts <- list()
b <- datasets$bcg
for (test in c("z", "knha")) {
  f <- rma(b$yi, b$vi, mods = ~ b$mods$ablat + b$mods$year, test = test, control = tight)
  for (X in list(rbind(c(1, 20, 1960), c(1, 40, 1960)),
                 rbind(c(1, 20, 1960), c(1, 40, 1960), c(0, 20, 0)))) {
  a <- anova(f, X = X)
  contrasts[[length(contrasts) + 1]] <- list(test = test, X = X, estimate = num(a$Xb),
                                             se = num(a$se), zval = num(a$zval),
                                             pval = num(a$pval), QM = num(a$QM),
                                             QMdf = num(a$QMdf), QMp = num(a$QMp))
  }
}
lrts <- list()
for (method in c("ML", "REML")) {
  full <- rma(b$yi, b$vi, mods = ~ b$mods$ablat + b$mods$year, method = method,
              control = tight)
  reduced <- rma(b$yi, b$vi, mods = ~ b$mods$ablat, method = method, control = tight)
  a <- suppressWarnings(anova(full, reduced))
  lrts[[length(lrts) + 1]] <- list(method = method, LRT = num(a$LRT), df = num(a$parms.f -
                                   a$parms.r), pval = num(a$pval),
                                   fit_stats_full = num(a$fit.stats.f),
                                   fit_stats_reduced = num(a$fit.stats.r))
}
write_fixture(list(versions = versions, bcg_ni = bcg_ni, fits = diag_fits, regtest = regtests,
                   fsn = fsns, se_tau2 = se_tau2, contrasts = contrasts, lrt = lrts),
              "diagnostics")

# ------------------------------------------------------------------------------ robust() (CR2)
# metafor's robust(res, cluster, clubSandwich = TRUE) is clubSandwich's coef_test with CR2 and
# Satterthwaite df; on dat.konstantopoulos2011 (schools in districts): rma with and without a
# moderator, FE and REML, and the three-level rma.mv, each robust by district
robusts <- list()
ctl <- list(rel.tol = 1e-10, iter.max = 10000, eval.max = 10000)
add_robust <- function(kind, f, mods, method) {
  ct <- coef_test(f, vcov = "CR2", cluster = kon$district, test = "Satterthwaite")
  ci <- conf_int(f, vcov = "CR2", cluster = kon$district)
  robusts[[length(robusts) + 1]] <<- list(kind = kind, mods = mods, method = method,
    beta = num(f$beta), se = num(ct$SE), df = num(ct$df_Satt), pval = num(ct$p_Satt),
    ci_lb = num(ci$CI_L), ci_ub = num(ci$CI_U))
}
for (method in c("REML", "FE", "DL")) {
  add_robust("rma", rma(yi, vi, data = kon, method = method, control = tight), list(), method)
  add_robust("rma", rma(yi, vi, mods = ~ year, data = kon, method = method, control = tight),
             list("year"), method)
}
add_robust("rma_mv", rma.mv(yi, vi, random = ~ 1 | district/school, data = kon, control = ctl),
           list(), "REML")
add_robust("rma_mv", rma.mv(yi, vi, mods = ~ year, random = ~ 1 | district/school, data = kon,
                            control = ctl), list("year"), "REML")
write_fixture(list(versions = c(versions, clubSandwich = as.character(packageVersion("clubSandwich"))),
                   fits = robusts), "robust")

# ------------------------------------------------------------------------------ rho, selmodel
# the CHE model over the assumed correlation rho (dalgaard2025), as in the CHE notes
rhos <- list()
for (r in c(0, 0.2, 0.4, 0.6, 0.8)) {
  V <- impute_covariance_matrix(dal$vgt, cluster = dal$studyid, r = r)
  f <- rma.mv(gt, V, random = ~ 1 | studyid/esid, data = dal, control = ctl)
  ct <- coef_test(f, vcov = "CR2", test = "Satterthwaite")
  rhos[[length(rhos) + 1]] <- list(rho = r, beta = num(f$beta), se = num(ct$SE),
                                   df = num(ct$df_Satt), sigma2 = num(f$sigma2))
}
# step-function selection models (Vevea & Hedges, 1995) by ML: hackshaw1998 (passive smoking,
# log OR) and raudenbush1985 (teacher expectancy, SMD), one and two cut-points
sels <- list()
hack <- metadat::dat.hackshaw1998
for (spec in list(list(data = "hackshaw", steps = 0.025), list(data = "hackshaw",
                  steps = c(0.025, 0.5)), list(data = "raudenbush", steps = 0.025))) {
  d <- if (spec$data == "hackshaw") list(yi = hack$yi, vi = hack$vi) else datasets$raudenbush
  f <- rma(d$yi, d$vi, method = "ML", control = tight)
  s <- selmodel(f, type = "stepfun", steps = spec$steps)
  sels[[length(sels) + 1]] <- c(spec, list(yi = num(d$yi), vi = num(d$vi), beta = num(s$beta),
    se = num(s$se), tau2 = num(s$tau2), se_tau2 = num(s$se.tau2), delta = num(s$delta),
    se_delta = num(s$se.delta), LRT = num(s$LRT), LRTp = num(s$LRTp),
    logLik = num(logLik(s))))
}
write_fixture(list(versions = c(versions, clubSandwich = as.character(packageVersion("clubSandwich"))),
                   rho = rhos, selmodel = sels), "publication_bias")

# ------------------------------------------------------------------------------ known V, profiles
# rma.mv with a known sampling covariance V from vcalc (dalgaard2025: effects share samples,
# rho = 0.6, as the CHE notes), REML and ML, with and without a moderator; and the profile
# likelihood intervals (confint.rma.mv) and random effects (ranef.rma.mv) of three-level fits,
# with V and with diagonal vi (konstantopoulos2011, z and t tests)
# (obs = esid: each row its own outcome, correlated rho; without obs vcalc takes the rows of a
# study as the same outcome, correlation 1)
Vd <- vcalc(vgt, cluster = studyid, obs = esid, rho = 0.6, data = dal)
known <- list()
profile_fit <- function(f, data_name, mods, method, test) {
  ci <- confint(f, control = list(tol = 1e-12))
  re <- ranef(f)
  level <- function(x) list(labels = rownames(x), pred = num(x$intrcpt), se = num(x$se),
                            pi_lb = num(x$pi.lb), pi_ub = num(x$pi.ub))
  list(data = data_name, mods = mods, method = method, test = test, beta = num(f$beta),
       se = num(f$se), sigma2 = num(f$sigma2), QE = num(f$QE), QEp = num(f$QEp),
       fitstats = num(fitstats(f)),
       sigma2_between = num(ci[[1]]$random[1, ]), sigma2_within = num(ci[[2]]$random[1, ]),
       sigma_between = num(ci[[1]]$random[2, ]), sigma_within = num(ci[[2]]$random[2, ]),
       ranef_cluster = level(re[[1]]), ranef_effect = level(re[[2]]))
}
for (method in c("REML", "ML")) {
  for (m in if (method == "REML") list(NULL, "rct") else list(NULL)) {
    f <- if (is.null(m)) rma.mv(gt, Vd, random = ~ 1 | studyid/esid, data = dal, method = method,
                                control = ctl)
         else rma.mv(gt, Vd, mods = ~ rct, random = ~ 1 | studyid/esid, data = dal,
                     method = method, control = ctl)
    known[[length(known) + 1]] <- profile_fit(f, "dalgaard", if (is.null(m)) list() else list(m),
                                              method, "z")
  }
}
for (method in c("REML", "ML")) for (test in c("z", "t")) {
  f <- rma.mv(yi, vi, random = ~ 1 | district/school, data = kon, method = method, test = test,
              control = ctl)
  known[[length(known) + 1]] <- profile_fit(f, "konstantopoulos", list(), method, test)
}
write_fixture(list(versions = versions, V_first = unname(as.matrix(Vd[1:12, 1:12])),
                   V_sum = sum(Vd), V_nonzero = sum(Vd != 0), fits = known), "known_v")
