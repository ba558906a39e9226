/* admin/alerts.c — see alerts.h. */
#include "admin/alerts.h"
#include "admin/webhook.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/timefmt.h"
#include "featd/v1/event.pb-c.h"
#include "ingest/producer.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void feat_alert_to_pb(const feat_alert_t *a, feat_buf_t *out) {
    Featd__V1__DriftAlert m = FEATD__V1__DRIFT_ALERT__INIT;
    m.id = (char *)a->id;
    m.time_ms = a->time_ms;
    m.state = a->drifting ? FEATD__V1__DRIFT_ALERT__STATE__DRIFTING : FEATD__V1__DRIFT_ALERT__STATE__RECOVERED;
    m.table = (char *)(a->table ? a->table : "");
    m.feature = (char *)a->feature;
    m.model = (char *)(a->model ? a->model : "");
    m.statistic = (char *)a->statistic;
    m.value = a->value;
    m.threshold = a->threshold;
    m.p_value = a->p_value;
    m.window_size = a->window_size;
    m.reference_size = a->reference_size;
    m.retrain_requested = a->retrain_requested;
    m.ks = a->ks;
    m.psi = a->psi;
    m.kl = a->kl;
    size_t n = featd__v1__drift_alert__get_packed_size(&m);
    if (feat_buf_grow(out, n)) return;
    featd__v1__drift_alert__pack(&m, (uint8_t *)out->data + out->len);
    out->len += n;
}

static void num(feat_buf_t *b, const char *key, double v) {
    if (isfinite(v)) feat_buf_printf(b, ",\"%s\":%.10g", key, v);
    else feat_buf_printf(b, ",\"%s\":null", key);
}

static void str(feat_buf_t *b, const char *key, const char *v) {
    feat_buf_printf(b, ",\"%s\":", key);
    if (v) feat_buf_json_str(b, v, strlen(v));
    else feat_buf_puts(b, "null");
}

void feat_alert_to_json(const feat_alert_t *a, feat_buf_t *b) {
    char ts[40];
    feat_format_rfc3339(a->time_ms, ts, sizeof(ts));
    feat_buf_puts(b, "{\"id\":");
    feat_buf_json_str(b, a->id, strlen(a->id));
    feat_buf_printf(b, ",\"time_ms\":%lld,\"time\":\"%s\",\"state\":\"%s\"", (long long)a->time_ms, ts,
                    a->drifting ? "DRIFTING" : "RECOVERED");
    str(b, "table", a->table);
    str(b, "feature", a->feature);
    str(b, "model", a->model);
    str(b, "statistic", a->statistic);
    num(b, "value", a->value);
    num(b, "threshold", a->threshold);
    num(b, "p_value", a->p_value);
    num(b, "ks", a->ks);
    num(b, "psi", a->psi);
    num(b, "kl", a->kl);
    feat_buf_printf(b, ",\"window_size\":%llu,\"reference_size\":%llu,\"retrain_requested\":%s}",
                    (unsigned long long)a->window_size, (unsigned long long)a->reference_size,
                    a->retrain_requested ? "true" : "false");
}

void feat_drift_entry_json(const feat_drift_entry_t *e, feat_buf_t *b) {
    feat_buf_puts(b, "{\"table\":");
    if (e->table) feat_buf_json_str(b, e->table, strlen(e->table));
    else feat_buf_puts(b, "null");
    str(b, "feature", e->feature);
    str(b, "model", e->model);
    feat_buf_printf(b, ",\"kind\":\"%s\",\"status\":\"%s\",\"reference_source\":\"%s\"",
                    e->categorical ? "categorical" : "numeric", feat_drift_state_name(e->state),
                    feat_drift_source_name(e->source));
    feat_buf_printf(b, ",\"window_size\":%llu,\"reference_size\":%llu,\"windows\":%llu,\"window_end_ms\":%lld",
                    (unsigned long long)e->window_size, (unsigned long long)e->reference_size,
                    (unsigned long long)e->windows, (long long)e->window_end_ms);
    num(b, "ks", e->ks);
    num(b, "ks_p_value", e->ks_p);
    num(b, "psi", e->psi);
    num(b, "kl", e->kl);
    num(b, "js", e->js);
    if (e->categorical) {
        num(b, "chi2", e->chi2);
        num(b, "chi2_p_value", e->chi2_p);
    }
    feat_buf_puts(b, ",\"thresholds\":{");
    feat_buf_printf(b, "\"ks\":%g,\"psi\":%g,\"kl\":%g,\"js\":%g,\"p_value\":%g}", e->th_ks, e->th_psi, e->th_kl,
                    e->th_js, e->th_p);
    feat_buf_puts(b, ",\"histogram\":{\"bins\":[");
    for (uint32_t i = 0; i < e->nbins; i++) {
        if (i) feat_buf_putc(b, ',');
        if (e->categorical) {
            feat_buf_puts(b, "{\"label\":");
            feat_buf_json_str(b, e->labels[i], strlen(e->labels[i]));
        } else {
            feat_buf_printf(b, "{\"lo\":%.10g,\"hi\":%.10g", e->edges[i], e->edges[i + 1]);
        }
        feat_buf_printf(b, ",\"reference\":%.6g,\"live\":%.6g}", e->ref_frac[i], e->live_frac[i]);
    }
    feat_buf_puts(b, "]},\"history\":[");
    for (uint32_t i = 0; i < e->nhist; i++)
        feat_buf_printf(b, "%s{\"ks\":%.6g,\"psi\":%.6g,\"drift\":%s}", i ? "," : "", e->hist_ks[i], e->hist_psi[i],
                        e->hist_drift[i] ? "true" : "false");
    feat_buf_puts(b, "]}");
}

/* ---- sinks ------------------------------------------------------------------------------ */

void feat_alert_log_sink(void *arg, const feat_alert_t *a) {
    const feat_alert_log_t *lg = arg;
    const char *stream = a->table ? a->table : a->model ? a->model : "";
    if (!a->table && a->feature && !strcmp(a->feature, "quality")) return; /* train logs its own */
    if (a->drifting) {
        /* the KS test's p-value: the alert's for a number; a category has no
         * KS test (its KS is 0, p 1) and its p_value is chi-square's */
        double ks_p = a->ks == 0 ? 1 : a->p_value;
        feat_log(FEAT_LOG_WARN, "drift", "%s%s%s DRIFTING: %s %.4g >= %.4g (KS %.4f p=%.3g, PSI %.4f, KL %.4f; "
                 "window %llu values, reference %llu)", stream, ".", a->feature, a->statistic, a->value,
                 a->threshold, a->ks, ks_p, a->psi, a->kl, (unsigned long long)a->window_size,
                 (unsigned long long)a->reference_size);
    } else {
        feat_log(FEAT_LOG_INFO, "drift", "%s.%s recovered after %lld clean windows (KS %.4f, PSI %.4f)", stream,
                 a->feature, (long long)lg->recovery_windows, a->ks, a->psi);
    }
}

void feat_alert_counters_init(feat_alert_counters_t *c, feat_metrics_t *metrics) {
    if (!metrics) metrics = feat_metrics_global();
    c->drifting = feat_counter(metrics, "featd_drift_alerts_total", "Drift alerts raised, by kind.", "state=\"drifting\"");
    c->recovered = feat_counter(metrics, "featd_drift_alerts_total", "Drift alerts raised, by kind.", "state=\"recovered\"");
}

void feat_alert_metrics_sink(void *arg, const feat_alert_t *a) {
    const feat_alert_counters_t *c = arg;
    feat_metric_add(a->drifting ? c->drifting : c->recovered, 1);
}

void feat_alert_kafka_sink(void *arg, const feat_alert_t *a) {
    const feat_alert_kafka_t *k = arg;
    feat_buf_t b = FEAT_BUF_INIT;
    feat_alert_to_pb(a, &b);
    char key[160];
    snprintf(key, sizeof(key), "%s.%s", a->table ? a->table : (a->model ? a->model : ""), a->feature);
    if (!b.oom)
        feat_producer_send(k->producer, k->topic, key, strlen(key), b.data, b.len, "application/x-protobuf");
    feat_buf_free(&b);
}

void feat_alert_webhook_sink(void *arg, const feat_alert_t *a) {
    feat_buf_t b = FEAT_BUF_INIT;
    feat_alert_to_json(a, &b);
    if (!b.oom) feat_webhook_post(arg, b.data, b.len);
    feat_buf_free(&b);
}

/* ---- the page ------------------------------------------------------------------------- */

static void esc(feat_buf_t *b, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '<': feat_buf_puts(b, "&lt;"); break;
        case '>': feat_buf_puts(b, "&gt;"); break;
        case '&': feat_buf_puts(b, "&amp;"); break;
        case '"': feat_buf_puts(b, "&quot;"); break;
        default: feat_buf_putc(b, *s); break;
        }
    }
}

/* Reference vs last window, as bars side by side. */
static void histogram_svg(feat_buf_t *b, const feat_drift_entry_t *e) {
    const int W = 360, H = 150, pad = 24;
    feat_buf_printf(b, "<svg class=\"hist\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" "
                       "aria-label=\"reference and live histogram\">", W, H, W, H);
    feat_buf_printf(b, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#999\"/>", pad, H - pad, W - 4, H - pad);
    double mx = 0;
    for (uint32_t i = 0; i < e->nbins; i++) mx = fmax(mx, fmax(e->ref_frac[i], e->live_frac[i]));
    if (e->nbins == 0 || mx <= 0) {
        feat_buf_printf(b, "<text x=\"%d\" y=\"%d\" font-size=\"12\" fill=\"#777\">no closed window yet</text></svg>",
                        pad + 8, H / 2);
        return;
    }
    double bw = (double)(W - pad - 8) / e->nbins;
    for (uint32_t i = 0; i < e->nbins; i++) {
        double x = pad + i * bw;
        double hr = (H - 2 * pad) * e->ref_frac[i] / mx, hl = (H - 2 * pad) * e->live_frac[i] / mx;
        feat_buf_printf(b, "<rect class=\"ref\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#7a9cc6\">"
                           "<title>reference %.3f</title></rect>", x + 1, H - pad - hr, bw / 2 - 1, hr, e->ref_frac[i]);
        feat_buf_printf(b, "<rect class=\"live\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#e8894a\">"
                           "<title>live %.3f</title></rect>", x + bw / 2, H - pad - hl, bw / 2 - 1, hl, e->live_frac[i]);
        if (e->categorical && e->nbins <= 12) {
            feat_buf_printf(b, "<text x=\"%.1f\" y=\"%d\" font-size=\"9\" text-anchor=\"middle\">", x + bw / 2, H - pad + 11);
            esc(b, e->labels[i]);
            feat_buf_puts(b, "</text>");
        }
    }
    if (!e->categorical)
        feat_buf_printf(b, "<text x=\"%d\" y=\"%d\" font-size=\"9\">%.4g</text><text x=\"%d\" y=\"%d\" font-size=\"9\" "
                           "text-anchor=\"end\">%.4g</text>", pad, H - pad + 11, e->edges[0], W - 4, H - pad + 11,
                        e->edges[e->nbins]);
    feat_buf_puts(b, "</svg>");
}

/* KS (or JS for categories shown via PSI) over recent windows. */
static void history_svg(feat_buf_t *b, const feat_drift_entry_t *e) {
    const int W = 360, H = 150, pad = 24;
    feat_buf_printf(b, "<svg class=\"trend\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" "
                       "aria-label=\"statistic over recent windows\">", W, H, W, H);
    feat_buf_printf(b, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#999\"/>", pad, H - pad, W - 4, H - pad);
    int use_psi = e->categorical;
    double th = use_psi ? e->th_psi : e->th_ks;
    double mx = th * 1.5;
    for (uint32_t i = 0; i < e->nhist; i++) mx = fmax(mx, use_psi ? e->hist_psi[i] : e->hist_ks[i]);
    double ty = H - pad - (H - 2 * pad) * th / mx;
    feat_buf_printf(b, "<line class=\"threshold\" x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#c33\" "
                       "stroke-dasharray=\"4 3\"/><text x=\"%d\" y=\"%.1f\" font-size=\"9\" fill=\"#c33\">%s %.3g</text>",
                    pad, ty, W - 4, ty, pad + 2, ty - 3, use_psi ? "PSI" : "KS", th);
    if (e->nhist) {
        feat_buf_puts(b, "<polyline class=\"series\" fill=\"none\" stroke=\"#2b5d8a\" stroke-width=\"1.5\" points=\"");
        double dx = e->nhist > 1 ? (double)(W - pad - 8) / (e->nhist - 1) : 0;
        for (uint32_t i = 0; i < e->nhist; i++) {
            double v = use_psi ? e->hist_psi[i] : e->hist_ks[i];
            feat_buf_printf(b, "%.1f,%.1f ", pad + i * dx, H - pad - (H - 2 * pad) * v / mx);
        }
        feat_buf_puts(b, "\"/>");
        for (uint32_t i = 0; i < e->nhist; i++) {
            if (!e->hist_drift[i]) continue;
            double v = use_psi ? e->hist_psi[i] : e->hist_ks[i];
            feat_buf_printf(b, "<circle class=\"drift-point\" cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"#c33\"/>",
                            pad + i * dx, H - pad - (H - 2 * pad) * v / mx);
        }
    }
    feat_buf_puts(b, "</svg>");
}

typedef struct page_ctx {
    feat_buf_t *b;
    int n, drifting;
} page_ctx_t;

static void page_entry(void *arg, const feat_drift_entry_t *e) {
    page_ctx_t *pc = arg;
    feat_buf_t *b = pc->b;
    pc->n++;
    pc->drifting += e->state == FEAT_DRIFT_DRIFTING;
    feat_buf_printf(b, "<section class=\"feature %s\" data-feature=\"", feat_drift_state_name(e->state));
    esc(b, e->table ? e->table : e->model);
    feat_buf_putc(b, '.');
    esc(b, e->feature);
    feat_buf_puts(b, "\"><h2>");
    esc(b, e->table ? e->table : e->model);
    feat_buf_putc(b, '.');
    esc(b, e->feature);
    feat_buf_printf(b, " <span class=\"status\">%s</span></h2><p class=\"stats\">", feat_drift_state_name(e->state));
    if (e->categorical)
        feat_buf_printf(b, "chi&sup2; p=%.3g &middot; JS %.4f &middot; PSI %.4f &middot; KL %.4f", e->chi2_p, e->js,
                        e->psi, e->kl);
    else
        feat_buf_printf(b, "KS %.4f (p=%.3g) &middot; PSI %.4f &middot; KL %.4f &middot; JS %.4f", e->ks, e->ks_p,
                        e->psi, e->kl, e->js);
    feat_buf_printf(b, " &middot; window %llu, reference %llu (%s)", (unsigned long long)e->window_size,
                    (unsigned long long)e->reference_size, feat_drift_source_name(e->source));
    feat_buf_puts(b, "</p><div class=\"charts\">");
    histogram_svg(b, e);
    history_svg(b, e);
    feat_buf_puts(b, "</div></section>\n");
}

void feat_drift_page(feat_drift_t *d, const char *version, feat_buf_t *b) {
    char ts[40];
    feat_format_rfc3339(feat_now_ms(), ts, sizeof(ts));
    feat_buf_printf(b, "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>featd drift</title>"
                       "<meta http-equiv=\"refresh\" content=\"10\"><style>"
                       "body{font-family:sans-serif;margin:1.5em;color:#222}"
                       "section{border:1px solid #ddd;border-radius:6px;padding:.6em 1em;margin:.8em 0}"
                       "section.drifting{border-color:#c33;background:#fff5f5}"
                       ".status{font-size:.8em;padding:.1em .5em;border-radius:4px;background:#eee}"
                       ".drifting .status{background:#c33;color:#fff}.ok .status{background:#3a7;color:#fff}"
                       ".charts{display:flex;gap:1em;flex-wrap:wrap}.stats{font-size:.9em;color:#444}"
                       ".legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}"
                       "</style></head><body><h1>featd drift</h1><p>featd %s &middot; %s &middot; "
                       "<span class=\"legend\"><span style=\"background:#7a9cc6\"></span>reference"
                       "<span style=\"background:#e8894a\"></span>last window"
                       "<span style=\"background:#2b5d8a;height:2px\"></span>statistic per window</span></p>\n",
                    version, ts);
    page_ctx_t pc = {b, 0, 0};
    size_t mark = b->len;
    feat_drift_report(d, NULL, NULL, page_entry, &pc);
    char summary[160];
    int n = snprintf(summary, sizeof(summary), "<p id=\"summary\">%d monitored, %d drifting</p>\n", pc.n, pc.drifting);
    /* insert the summary before the sections */
    if (feat_buf_grow(b, (size_t)n) == 0) {
        memmove(b->data + mark + n, b->data + mark, b->len - mark);
        memcpy(b->data + mark, summary, (size_t)n);
        b->len += (size_t)n;
    }
    feat_buf_puts(b, "</body></html>\n");
}
