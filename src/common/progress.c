/* progress.c - rate, ETA and the JSON record of a job's progress (see the
 * header). */
#include "common/progress.h"

#include <string.h>

void cs_rate_reset(cs_rate *r)
{
    double window = r->window;
    memset(r, 0, sizeof *r);
    r->window = window;
}

void cs_rate_add(cs_rate *r, double t, uint64_t v)
{
    double window = r->window > 0 ? r->window : 10.0;
    if (r->n) {
        size_t newest = (r->head + r->n - 1) % CS_RATE_SAMPLES;
        if (v < r->v[newest] || t < r->t[newest]) /* the counter started again (a new phase) */
            cs_rate_reset(r);
    }
    if (r->n == CS_RATE_SAMPLES) { /* full: the oldest goes */
        r->head = (r->head + 1) % CS_RATE_SAMPLES;
        r->n--;
    }
    size_t at = (r->head + r->n) % CS_RATE_SAMPLES;
    r->t[at] = t;
    r->v[at] = v;
    r->n++;
    /* Keep the window, but always the sample before it: a rate over a
     * little more than the window beats no rate after a pause. */
    while (r->n > 2 && t - r->t[(r->head + 1) % CS_RATE_SAMPLES] >= window) {
        r->head = (r->head + 1) % CS_RATE_SAMPLES;
        r->n--;
    }
}

double cs_rate_per_second(const cs_rate *r)
{
    if (r->n < 2)
        return 0;
    size_t newest = (r->head + r->n - 1) % CS_RATE_SAMPLES;
    double dt = r->t[newest] - r->t[r->head];
    if (dt < 0.1)
        return 0;
    return (double)(r->v[newest] - r->v[r->head]) / dt;
}

double cs_progress_eta(uint64_t done, uint64_t total, double rate)
{
    if (!total)
        return -1;
    if (done >= total)
        return 0;
    if (!(rate > 0))
        return -1;
    return (double)(total - done) / rate;
}


/* The ETA the line and the events show: by bytes when their total is
 * known, else by files. */
double cs_progress_eta_of(const cs_progress *p, double byte_rate, double file_rate)
{
    if (p->bytes_total)
        return cs_progress_eta(p->bytes_done, p->bytes_total, byte_rate);
    return cs_progress_eta(p->files_done, p->files_total, file_rate);
}

double cs_progress_phase_elapsed(const cs_progress *p)
{
    double t = p->started + p->elapsed - p->phase_started;
    return t > 0 ? t : 0;
}


/* Seconds to the millisecond (jansson prints every digit of a double). */
static json_t *seconds_json(double s)
{
    return json_real(s > 0 ? (double)(long long)(s * 1000.0 + 0.5) / 1000.0 : 0.0);
}

json_t *cs_progress_json(const cs_progress *p, double byte_rate, double file_rate)
{
    double eta = cs_progress_eta_of(p, byte_rate, file_rate);
    json_t *ev = json_object();
    json_object_set_new(ev, "op", json_string(p->op));
    json_object_set_new(ev, "phase", json_string(p->phase));
    json_object_set_new(ev, "files_done", json_integer((json_int_t)p->files_done));
    json_object_set_new(ev, "files_total", json_integer((json_int_t)p->files_total));
    json_object_set_new(ev, "bytes_done", json_integer((json_int_t)p->bytes_done));
    json_object_set_new(ev, "bytes_total", json_integer((json_int_t)p->bytes_total));
    json_object_set_new(ev, "item", json_string(p->item));
    json_object_set_new(ev, "elapsed", seconds_json(p->elapsed));
    json_object_set_new(ev, "phase_elapsed", seconds_json(cs_progress_phase_elapsed(p)));
    json_object_set_new(ev, "bytes_per_second", json_integer((json_int_t)byte_rate));
    json_object_set_new(ev, "eta", eta >= 0 ? seconds_json(eta) : json_null());
    json_object_set_new(ev, "final", json_boolean(p->final));
    json_object_set_new(ev, "canceled", json_boolean(p->canceled));
    return ev;
}

double cs_progress_part_eta(const cs_progress_part *part, double byte_rate, double file_rate)
{
    if (part->bytes_total)
        return cs_progress_eta(part->bytes_done, part->bytes_total, byte_rate);
    return cs_progress_eta(part->files_done, part->files_total, file_rate);
}

json_t *cs_progress_part_json(const cs_progress_part *part, double byte_rate, double file_rate)
{
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(part->name));
    json_object_set_new(o, "phase", json_string(part->phase));
    json_object_set_new(o, "state", json_string(cs_part_state_name(part->state)));
    json_object_set_new(o, "files_done", json_integer((json_int_t)part->files_done));
    json_object_set_new(o, "files_total", json_integer((json_int_t)part->files_total));
    json_object_set_new(o, "bytes_done", json_integer((json_int_t)part->bytes_done));
    json_object_set_new(o, "bytes_total", json_integer((json_int_t)part->bytes_total));
    if (byte_rate >= 0) {
        double eta = cs_progress_part_eta(part, byte_rate, file_rate);
        json_object_set_new(o, "bytes_per_second", json_integer((json_int_t)byte_rate));
        json_object_set_new(o, "eta", eta >= 0 ? seconds_json(eta) : json_null());
    }
    return o;
}
