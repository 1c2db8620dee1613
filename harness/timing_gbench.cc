// timing_gbench.cc — the Google Benchmark shim behind dcbh_time (measure.h),
// the project's only C++ file. Google Benchmark chooses the iteration count
// and runs the repetitions; the statistics are computed here from the
// per-repetition times so that they mean the same whatever the library's
// version computes for its aggregates.
//
// Not reentrant: Google Benchmark's registry and flags are process-global, so
// calls are serialised by a mutex and a body must not call dcbh_time itself.
//
// json_path: Google Benchmark's own JSON document for the run is appended to
// that file as ONE line (JSON Lines: one document per dcbh_time call), with
// one write; a failure to append it sets out->json_failed.
#include "measure.h"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#ifndef DCB_GBENCH_VERSION
#define DCB_GBENCH_VERSION "unknown"
#endif

namespace {

std::mutex g_lock;

void init_once() {
    static std::once_flag once;
    std::call_once(once, [] {
        // No warm-up phase of Google Benchmark's own: a sweep warms its
        // operator up explicitly, and a warm-up would only lengthen runs.
        static char a0[] = "dcbench", a1[] = "--benchmark_min_warmup_time=0";
        static char *argv[] = {a0, a1, nullptr};
        int argc = 2;
        benchmark::Initialize(&argc, argv);
    });
}

// Collects the repetitions' real times; optionally tees everything to a
// JSONReporter (a second "file reporter" would need --benchmark_out).
class Collector : public benchmark::BenchmarkReporter {
  public:
    explicit Collector(benchmark::BenchmarkReporter *tee) : tee_(tee) {}
    bool ReportContext(const Context &ctx) override {
        if (tee_) tee_->ReportContext(ctx);
        return true;
    }
    void ReportRuns(const std::vector<Run> &runs) override {
        if (tee_) tee_->ReportRuns(runs);
        for (const Run &r : runs) {
            if (r.run_type != Run::RT_Iteration) continue;
            if (r.error_occurred) {
                if (error.empty()) error = r.error_message;
                continue;
            }
            if (r.iterations <= 0) continue;
            // real_accumulated_time is in seconds whatever the display unit.
            times.push_back(r.real_accumulated_time / (double)r.iterations);
            iterations = (int64_t)r.iterations;
        }
    }
    void Finalize() override {
        if (tee_) tee_->Finalize();
    }
    std::vector<double> times;
    int64_t iterations = 0;
    std::string error;

  private:
    benchmark::BenchmarkReporter *tee_;
};

struct Shared {
    dcbh_body body;
    void *ctx;
    int64_t next = 0;   // iteration counter over the whole measurement
    bool failed = false;
    int code = 0;
};

void set_err(char *err, size_t errlen, const std::string &msg) {
    if (err && errlen) std::snprintf(err, errlen, "%s", msg.c_str());
}

// Google Benchmark's JSON is pretty-printed; raw newlines occur only between
// tokens (strings escape theirs), so dropping each newline with the
// indentation that follows it gives the same document on one line.
std::string one_line(const std::string &s) {
    std::string o;
    o.reserve(s.size());
    for (size_t i = 0; i < s.size(); i++) {
        if (s[i] == '\n') {
            while (i + 1 < s.size() && (s[i + 1] == ' ' || s[i + 1] == '\t')) i++;
            continue;
        }
        o += s[i];
    }
    return o;
}

// One record, one write() on an O_APPEND descriptor (csv_append_line, as the
// CSV rows): concurrent writers do not interleave within a line, and a write
// that runs out of room leaves no part of the record. why gets the file and
// the errno of the failure.
bool append_line(const char *path, const std::string &line, std::string &why) {
    int fd = ::open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        why = std::string("cannot open ") + path + ": " + std::strerror(errno);
        return false;
    }
    std::string buf = line + "\n";
    bool ok = csv_append_line(fd, buf.data(), buf.size()) == 0;
    if (!ok) why = std::string("cannot append to ") + path + ": " + std::strerror(errno);
    if (::close(fd) != 0 && ok) {
        why = std::string("cannot close ") + path + ": " + std::strerror(errno);
        ok = false;
    }
    return ok;
}

void fill_stats(const std::vector<double> &t, int64_t iterations, dcbh_time_stats *out) {
    const size_t n = std::min(t.size(), (size_t)DCBH_MAX_REPS);
    std::vector<double> s(t.begin(), t.begin() + (long)n);
    out->repetitions = (int)n;
    out->iterations = iterations;
    for (int i = 0; i < DCBH_MAX_REPS; i++) out->rep[i] = i < (int)n ? s[(size_t)i] : NAN;
    std::sort(s.begin(), s.end());
    out->min = s.front();
    out->max = s.back();
    out->median = n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
    double sum = 0;
    for (double v : s) sum += v;
    out->mean = sum / (double)n;
    if (n < 2) {  // a spread from one sample is unknown, not zero
        out->stddev = out->cv = NAN;
        return;
    }
    double ss = 0;
    for (double v : s) ss += (v - out->mean) * (v - out->mean);
    out->stddev = std::sqrt(ss / (double)(n - 1));
    out->cv = out->mean > 0 ? out->stddev / out->mean : NAN;
}

int time_impl(dcbh_body body, void *ctx, const dcbh_time_opts *opts, dcbh_time_stats *out,
              char *err, size_t errlen) {
    if (!body || !opts || !out) {
        set_err(err, errlen, "dcbh_time: NULL body, opts or out");
        return -1;
    }
    out->json_failed = 0;
    int reps = opts->repetitions < 1 ? 1 : std::min(opts->repetitions, DCBH_MAX_REPS);
    double min_time = opts->min_time > 0 ? opts->min_time : 0.05;
    std::string name = opts->name && *opts->name ? opts->name : "dcbench";

    std::lock_guard<std::mutex> guard(g_lock);
    init_once();
    benchmark::ClearRegisteredBenchmarks();

    Shared sh{body, ctx};
    const double threads = opts->threads;
    auto fn = [&sh, threads](benchmark::State &st) {
        // Shows in Google Benchmark's JSON; the body sets its threads itself.
        st.counters["dcb_threads"] = threads;
        if (sh.failed) {  // never call a body again after it failed
            st.SkipWithError("an earlier repetition failed");
            for (auto _ : st) break;
            return;
        }
        for (auto _ : st) {
            int rc = sh.body(sh.ctx, sh.next++);
            if (rc != 0) {
                sh.failed = true;
                sh.code = rc;
                st.SkipWithError("the timed body returned an error");
                break;
            }
        }
    };
    benchmark::RegisterBenchmark(name.c_str(), fn)
        ->Repetitions(reps)
        ->MinTime(min_time)
        ->MinWarmUpTime(0)
        // Wall time decides the iteration count: a body that works in
        // OpenMP/BLAS threads has little CPU time on the calling thread.
        ->UseRealTime()
        ->ReportAggregatesOnly(false)
        ->Unit(benchmark::kSecond);

    std::ostringstream json;
    benchmark::JSONReporter jrep;
    jrep.SetOutputStream(&json);
    jrep.SetErrorStream(&json);
    Collector col(opts->json_path ? &jrep : nullptr);
    std::ostringstream sink;  // Google Benchmark's own complaints, kept for messages
    col.SetOutputStream(&sink);
    col.SetErrorStream(&sink);

    size_t ran = benchmark::RunSpecifiedBenchmarks(&col, ".");
    benchmark::ClearRegisteredBenchmarks();

    if (sh.failed) {
        set_err(err, errlen,
                "dcbh_time: " + name + ": the body returned " + std::to_string(sh.code) +
                    " at iteration " + std::to_string(sh.next - 1));
        return -1;
    }
    if (ran == 0 || col.times.empty()) {
        std::string why = !col.error.empty() ? col.error : sink.str();
        set_err(err, errlen, "dcbh_time: " + name + ": Google Benchmark produced no repetition" +
                                 (why.empty() ? std::string() : " (" + why + ")"));
        return -1;
    }
    fill_stats(col.times, col.iterations, out);
    if (opts->json_path) {
        std::string why;
        if (!append_line(opts->json_path, one_line(json.str()), why)) {
            set_err(err, errlen, "dcbh_time: " + why);
            out->json_failed = 1;
            return -1;
        }
    }
    return 0;
}

}  // namespace

extern "C" int dcbh_time(dcbh_body body, void *ctx, const dcbh_time_opts *opts,
                         dcbh_time_stats *out, char *err, size_t errlen) {
    try {
        return time_impl(body, ctx, opts, out, err, errlen);
    } catch (const std::exception &e) {
        set_err(err, errlen, std::string("dcbh_time: exception: ") + e.what());
    } catch (...) {
        set_err(err, errlen, "dcbh_time: unknown exception");
    }
    return -1;
}

// Google Benchmark 1.7 has no version query; the Makefile passes the
// installed package's version (pkg-config --modversion benchmark).
extern "C" const char *dcbh_gbench_version(void) { return DCB_GBENCH_VERSION; }
