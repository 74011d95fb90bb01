// An hnswlib HNSW graph whose element blocks hold the partition's only copy of each vector, in the
// collection's storage type (float32, float16, or int8 with a per-vector scale), behind a C interface that
// shard_node/graph.py loads with ctypes (ctypes releases the GIL for the length of every call).
//
// hnswlib's Python binding stores float32 only and hands vectors back through get_items at ~60 us each, so a
// partition used to keep a second, numpy copy beside the graph. Here the graph's own bytes are read back
// (rows), decoded in C, and the float16 / int8 types get their own distance functions.
//
// Queries are encoded to the storage type to walk the graph (the distance function sees the same layout on
// both sides, as insertion needs); float16 / int8 graphs then rescore the whole beam (ef candidates) against
// the float32 query from the decoded rows and keep the best k.

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <immintrin.h>

#include "hnswlib/hnswlib.h"

namespace {

enum Kind { F32 = 0, F16 = 1, I8 = 2 };
// Every type keeps each vector in its own scale, so rows read back as given (float32) or encode back to the same
// code (float16, int8). Float32 uses hnswlib's SIMD kernels: for cosine, its inner product times an inverse norm
// stored after the vector; the coded types compute cosine's norms in the same pass as the dot product.
enum Metric { IP = 0, L2 = 1, COS = 2 };

thread_local std::string last_error;

// Sums over one pair of rows: the dot product and both squared norms.
struct Sums {
    float ab, aa, bb;
};

// Half-precision rows widened to float32 a vector register at a time: sixteen lanes (AVX-512) or eight (F16C);
// machines without either run the scalar tail loop only.
#if defined(__AVX512F__)
struct F16Lanes {
    using V = __m512;
    static constexpr size_t width = 16;
    static V zero() { return _mm512_setzero_ps(); }
    static V load(const _Float16 *p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(p))); }
    static V sub(V a, V b) { return _mm512_sub_ps(a, b); }
    static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
    static float total(V v) { return _mm512_reduce_add_ps(v); }
};
#define SHOAL_F16_LANES 1
#elif defined(__F16C__) && defined(__FMA__)
struct F16Lanes {
    using V = __m256;
    static constexpr size_t width = 8;
    static V zero() { return _mm256_setzero_ps(); }
    static V load(const _Float16 *p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(p))); }
    static V sub(V a, V b) { return _mm256_sub_ps(a, b); }
    static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
    static float total(V v) {
        __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
    }
};
#define SHOAL_F16_LANES 1
#endif

// What one pass over a pair of half-precision rows sums: the dot product, the dot product and both squared
// norms (cosine), or the squared difference (l2, returned in `ab`).
enum class F16Sum { Dot, DotNorms, L2 };

template <F16Sum What>
Sums f16_sums(const _Float16 *x, const _Float16 *y, size_t dim) {
    size_t i = 0;
    Sums s{0.0f, 0.0f, 0.0f};
#ifdef SHOAL_F16_LANES
    using L = F16Lanes;
    L::V ab = L::zero(), aa = L::zero(), bb = L::zero();
    for (; i + L::width <= dim; i += L::width) {
        L::V a = L::load(x + i), b = L::load(y + i);
        if (What == F16Sum::L2) {
            L::V d = L::sub(a, b);
            ab = L::fma(d, d, ab);
            continue;
        }
        ab = L::fma(a, b, ab);
        if (What == F16Sum::DotNorms) {
            aa = L::fma(a, a, aa);
            bb = L::fma(b, b, bb);
        }
    }
    s.ab = L::total(ab);
    if (What == F16Sum::DotNorms) {
        s.aa = L::total(aa);
        s.bb = L::total(bb);
    }
#endif
    for (; i < dim; ++i) {
        float a = static_cast<float>(x[i]), b = static_cast<float>(y[i]);
        if (What == F16Sum::L2) {
            s.ab += (a - b) * (a - b);
            continue;
        }
        s.ab += a * b;
        s.aa += a * a;
        s.bb += b * b;
    }
    return s;
}

float cosine_distance(float ab, float aa, float bb) {
    float denom = std::sqrt(aa * bb);
    return denom > 0.0f ? 1.0f - ab / denom : 1.0f;
}

size_t dim_of(const void *param) { return *static_cast<const size_t *>(param); }

const _Float16 *halves(const void *v) { return static_cast<const _Float16 *>(v); }

float f16_ip(const void *a, const void *b, const void *param) {
    return 1.0f - f16_sums<F16Sum::Dot>(halves(a), halves(b), dim_of(param)).ab;
}

float f16_cos(const void *a, const void *b, const void *param) {
    Sums s = f16_sums<F16Sum::DotNorms>(halves(a), halves(b), dim_of(param));
    return cosine_distance(s.ab, s.aa, s.bb);
}

float f16_l2(const void *a, const void *b, const void *param) {
    return f16_sums<F16Sum::L2>(halves(a), halves(b), dim_of(param)).ab;
}

// int8 layout: dim codes, then the vector's scale (max |x| / 127).
struct I8Sums {
    int32_t ab, aa, bb;
};

I8Sums i8_sums(const void *a, const void *b, size_t dim) {
    const int8_t *x = static_cast<const int8_t *>(a), *y = static_cast<const int8_t *>(b);
    int32_t ab = 0, aa = 0, bb = 0;
#pragma omp simd reduction(+ : ab, aa, bb)
    for (size_t i = 0; i < dim; ++i) {
        int32_t p = x[i], q = y[i];
        ab += p * q;
        aa += p * p;
        bb += q * q;
    }
    return {ab, aa, bb};
}

float scale_of(const void *v, size_t dim) {
    float scale;
    std::memcpy(&scale, static_cast<const char *>(v) + dim, sizeof(float));
    return scale;
}

float i8_ip(const void *a, const void *b, const void *param) {
    size_t dim = dim_of(param);
    const int8_t *x = static_cast<const int8_t *>(a), *y = static_cast<const int8_t *>(b);
    int32_t ab = 0;
#pragma omp simd reduction(+ : ab)
    for (size_t i = 0; i < dim; ++i) ab += static_cast<int32_t>(x[i]) * static_cast<int32_t>(y[i]);
    return 1.0f - static_cast<float>(ab) * scale_of(a, dim) * scale_of(b, dim);
}

float i8_cos(const void *a, const void *b, const void *param) {
    I8Sums s = i8_sums(a, b, dim_of(param));  // the scales cancel
    return cosine_distance(static_cast<float>(s.ab), static_cast<float>(s.aa), static_cast<float>(s.bb));
}

float i8_l2(const void *a, const void *b, const void *param) {
    size_t dim = dim_of(param);
    I8Sums s = i8_sums(a, b, dim);
    float sa = scale_of(a, dim), sb = scale_of(b, dim);
    float d = sa * sa * static_cast<float>(s.aa) + sb * sb * static_cast<float>(s.bb) -
              2.0f * sa * sb * static_cast<float>(s.ab);
    return std::max(d, 0.0f);
}

// float32 cosine: dim floats, then 1 / |v|; hnswlib's inner-product kernel gives 1 - a.b.
struct F32CosParam {
    size_t dim;
    hnswlib::DISTFUNC<float> ip;
};

float f32_cos(const void *a, const void *b, const void *param) {
    const F32CosParam *p = static_cast<const F32CosParam *>(param);
    float dot = 1.0f - p->ip(a, b, &p->dim);
    float ia, ib;
    std::memcpy(&ia, static_cast<const float *>(a) + p->dim, sizeof(float));
    std::memcpy(&ib, static_cast<const float *>(b) + p->dim, sizeof(float));
    return 1.0f - dot * ia * ib;
}

class F32CosSpace : public hnswlib::SpaceInterface<float> {
 public:
    explicit F32CosSpace(size_t dim) : ip_(dim) { param_ = {dim, ip_.get_dist_func()}; }
    size_t get_data_size() override { return (param_.dim + 1) * sizeof(float); }
    hnswlib::DISTFUNC<float> get_dist_func() override { return f32_cos; }
    void *get_dist_func_param() override { return &param_; }

 private:
    hnswlib::InnerProductSpace ip_;
    F32CosParam param_;
};

// The float16 and int8 spaces; float32 l2 and ip use hnswlib's own (SIMD-dispatched) spaces.
class CodedSpace : public hnswlib::SpaceInterface<float> {
 public:
    CodedSpace(int kind, int metric, size_t dim) : dim_(dim) {
        if (kind == F16) {
            size_ = dim * sizeof(_Float16);
            func_ = metric == L2 ? f16_l2 : metric == COS ? f16_cos : f16_ip;
        } else {
            size_ = dim + sizeof(float);
            func_ = metric == L2 ? i8_l2 : metric == COS ? i8_cos : i8_ip;
        }
    }
    size_t get_data_size() override { return size_; }
    hnswlib::DISTFUNC<float> get_dist_func() override { return func_; }
    void *get_dist_func_param() override { return &dim_; }

 private:
    size_t dim_;
    size_t size_;
    hnswlib::DISTFUNC<float> func_;
};

class MaskFilter : public hnswlib::BaseFilterFunctor {
 public:
    MaskFilter(const uint8_t *mask, size_t len) : mask_(mask), len_(len) {}
    bool operator()(hnswlib::labeltype label) override { return label < len_ && mask_[label]; }

 private:
    const uint8_t *mask_;
    size_t len_;
};

struct Graph {
    int kind;
    int metric;
    size_t dim;
    std::unique_ptr<hnswlib::SpaceInterface<float>> space;
    std::unique_ptr<hnswlib::HierarchicalNSW<float>> hnsw;

    Graph(int kind_, int metric_, size_t dim_) : kind(kind_), metric(metric_), dim(dim_) {
        if (kind == F32) {
            if (metric == L2) space.reset(new hnswlib::L2Space(dim));
            else if (metric == COS) space.reset(new F32CosSpace(dim));
            else space.reset(new hnswlib::InnerProductSpace(dim));
        } else {
            space.reset(new CodedSpace(kind, metric, dim));
        }
    }

    size_t code_size() const { return space->get_data_size(); }

    // Upper-level link bytes, summed over elements as they are first counted: an element's level never changes
    // after it is added (a replaced vector keeps its slot), so each is counted once, not at every reading.
    size_t upper_bytes() {
        std::lock_guard<std::mutex> guard(upper_lock);
        size_t n = hnsw->cur_element_count;
        for (; upper_counted < n; ++upper_counted)
            upper_total += static_cast<size_t>(hnsw->element_levels_[upper_counted]) * hnsw->size_links_per_element_;
        return upper_total;
    }

 private:
    std::mutex upper_lock;
    size_t upper_counted = 0, upper_total = 0;

 public:

    void encode(const float *v, char *out) const {
        if (kind == F32) {
            std::memcpy(out, v, dim * sizeof(float));
            if (metric == COS) {
                float sq = 0.0f;
                for (size_t i = 0; i < dim; ++i) sq += v[i] * v[i];
                float inv = sq > 0.0f ? 1.0f / std::sqrt(sq) : 0.0f;
                std::memcpy(out + dim * sizeof(float), &inv, sizeof(float));
            }
        } else if (kind == F16) {
            _Float16 *h = reinterpret_cast<_Float16 *>(out);
            for (size_t i = 0; i < dim; ++i) h[i] = static_cast<_Float16>(std::clamp(v[i], -65504.0f, 65504.0f));
        } else {
            float top = 0.0f;
            for (size_t i = 0; i < dim; ++i) top = std::max(top, std::fabs(v[i]));
            float scale = top / 127.0f, inv = scale > 0.0f ? 1.0f / scale : 1.0f;
            int8_t *c = reinterpret_cast<int8_t *>(out);
            for (size_t i = 0; i < dim; ++i) c[i] = static_cast<int8_t>(std::clamp(std::nearbyint(v[i] * inv),
                                                                                 -127.0f, 127.0f));
            std::memcpy(out + dim, &scale, sizeof(float));
        }
    }

    void decode(const char *code, float *out) const {
        if (kind == F32) {
            std::memcpy(out, code, dim * sizeof(float));
        } else if (kind == F16) {
            const _Float16 *h = reinterpret_cast<const _Float16 *>(code);
            for (size_t i = 0; i < dim; ++i) out[i] = static_cast<float>(h[i]);
        } else {
            const int8_t *c = reinterpret_cast<const int8_t *>(code);
            float scale = scale_of(code, dim);
            for (size_t i = 0; i < dim; ++i) out[i] = static_cast<float>(c[i]) * scale;
        }
    }

    // The exact distance of a float32 query to a decoded row, as hnswlib would give it for float32 storage.
    float exact(const float *q, const float *row) const {
        float sum = 0.0f;
        if (metric == COS) {
            float qq = 0.0f, rr = 0.0f;
#pragma omp simd reduction(+ : sum, qq, rr)
            for (size_t i = 0; i < dim; ++i) {
                sum += q[i] * row[i];
                qq += q[i] * q[i];
                rr += row[i] * row[i];
            }
            return cosine_distance(sum, qq, rr);
        }
        if (metric == L2) {
#pragma omp simd reduction(+ : sum)
            for (size_t i = 0; i < dim; ++i) {
                float d = q[i] - row[i];
                sum += d * d;
            }
            return sum;
        }
#pragma omp simd reduction(+ : sum)
        for (size_t i = 0; i < dim; ++i) sum += q[i] * row[i];
        return 1.0f - sum;
    }

    // Internal id of a label, or -1 when the graph never held it; the caller holds hnsw->label_lookup_lock.
    int64_t internal_locked(int64_t label) const {
        auto it = hnsw->label_lookup_.find(static_cast<hnswlib::labeltype>(label));
        return it == hnsw->label_lookup_.end() ? -1 : static_cast<int64_t>(it->second);
    }

    int64_t internal(int64_t label) const {
        std::unique_lock<std::mutex> lock(hnsw->label_lookup_lock);
        return internal_locked(label);
    }
};

// Runs fn(row) for rows [0, n) on `threads` threads; the first exception is rethrown after all join.
template <class Fn>
void parallel_rows(size_t n, int threads, Fn fn) {
    if (threads <= 1 || n <= 1) {
        for (size_t i = 0; i < n; ++i) fn(i);
        return;
    }
    std::atomic<size_t> next(0);
    std::exception_ptr failure;
    std::mutex failure_lock;
    std::vector<std::thread> pool;
    size_t count = std::min(static_cast<size_t>(threads), n);
    for (size_t t = 0; t < count; ++t) {
        pool.emplace_back([&] {
            for (size_t i = next++; i < n; i = next++) {
                try {
                    fn(i);
                } catch (...) {
                    std::lock_guard<std::mutex> g(failure_lock);
                    if (!failure) failure = std::current_exception();
                    next = n;
                }
            }
        });
    }
    for (auto &th : pool) th.join();
    if (failure) std::rethrow_exception(failure);
}

template <class Fn>
int guarded(Fn fn) {
    try {
        fn();
        return 0;
    } catch (const std::exception &e) {
        last_error = e.what();
    } catch (...) {
        last_error = "unknown C++ exception";
    }
    return -1;
}

}  // namespace

extern "C" {

const char *graph_error() { return last_error.c_str(); }

void *graph_new(int kind, int metric, size_t dim, size_t max_elements, size_t m, size_t ef_construction,
                size_t seed) {
    Graph *g = nullptr;
    int rc = guarded([&] {
        std::unique_ptr<Graph> made(new Graph(kind, metric, dim));
        made->hnsw.reset(new hnswlib::HierarchicalNSW<float>(made->space.get(), max_elements, m, ef_construction,
                                                             seed));
        g = made.release();
    });
    return rc == 0 ? g : nullptr;
}

void *graph_load(int kind, int metric, size_t dim, const char *path, size_t max_elements) {
    Graph *g = nullptr;
    int rc = guarded([&] {
        std::unique_ptr<Graph> made(new Graph(kind, metric, dim));
        made->hnsw.reset(new hnswlib::HierarchicalNSW<float>(made->space.get(), std::string(path), false,
                                                             max_elements));
        g = made.release();
    });
    return rc == 0 ? g : nullptr;
}

void graph_free(void *handle) { delete static_cast<Graph *>(handle); }

size_t graph_code_size(void *handle) { return static_cast<Graph *>(handle)->code_size(); }

size_t graph_element_size(void *handle) { return static_cast<Graph *>(handle)->hnsw->size_data_per_element_; }

size_t graph_upper_bytes(void *handle) { return static_cast<Graph *>(handle)->upper_bytes(); }

// Bytes of one vector's code and of one level-0 element (code, links, label) for a storage type, metric, dim and
// M, asked of a one-slot graph so that nothing outside restates hnswlib's layout or the spaces' sizes.
int graph_layout(int kind, int metric, size_t dim, size_t m, size_t *code_size, size_t *element_size) {
    return guarded([&] {
        Graph g(kind, metric, dim);
        g.hnsw.reset(new hnswlib::HierarchicalNSW<float>(g.space.get(), 1, m, 16, 100));
        *code_size = g.code_size();
        *element_size = g.hnsw->size_data_per_element_;
    });
}

int graph_save(void *handle, const char *path) {
    return guarded([&] { static_cast<Graph *>(handle)->hnsw->saveIndex(std::string(path)); });
}

int graph_resize(void *handle, size_t max_elements) {
    return guarded([&] { static_cast<Graph *>(handle)->hnsw->resizeIndex(max_elements); });
}

void graph_set_ef(void *handle, size_t ef) { static_cast<Graph *>(handle)->hnsw->setEf(ef); }

int graph_add(void *handle, const float *vectors, const int64_t *labels, size_t n, int threads) {
    Graph *g = static_cast<Graph *>(handle);
    return guarded([&] {
        parallel_rows(n, threads, [&](size_t i) {
            std::vector<char> code(g->code_size());
            g->encode(vectors + i * g->dim, code.data());
            g->hnsw->addPoint(code.data(), static_cast<hnswlib::labeltype>(labels[i]));
        });
    });
}

int graph_mark_deleted(void *handle, int64_t label) {
    return guarded([&] { static_cast<Graph *>(handle)->hnsw->markDelete(static_cast<hnswlib::labeltype>(label)); });
}

// Decoded float32 rows of labels into out (n x dim); -1 when a label was never added.
int graph_rows(void *handle, const int64_t *labels, size_t n, float *out) {
    Graph *g = static_cast<Graph *>(handle);
    return guarded([&] {
        // One lock for the whole gather rather than one per label.
        std::unique_lock<std::mutex> lock(g->hnsw->label_lookup_lock);
        for (size_t i = 0; i < n; ++i) {
            int64_t id = g->internal_locked(labels[i]);
            if (id < 0) throw std::runtime_error("label " + std::to_string(labels[i]) + " is not in the graph");
            g->decode(g->hnsw->getDataByInternalId(static_cast<hnswlib::tableint>(id)), out + i * g->dim);
        }
    });
}

// Rows [0, n) by label, decoded, for labels 0..n-1 that all exist (a partition hands labels out densely).
int graph_prefix(void *handle, size_t n, float *out) {
    Graph *g = static_cast<Graph *>(handle);
    return guarded([&] {
        auto *h = g->hnsw.get();
        std::unique_lock<std::mutex> lock(h->label_lookup_lock);
        for (size_t id = 0; id < h->cur_element_count; ++id) {
            hnswlib::labeltype label = h->getExternalLabel(static_cast<hnswlib::tableint>(id));
            if (label < n) g->decode(h->getDataByInternalId(static_cast<hnswlib::tableint>(id)), out + label * g->dim);
        }
    });
}

// Top-k of each query (nq x dim), best first, into out_labels / out_dists (nq x k).
// mask (may be null) allows label l when l < mask_len and mask[l] != 0. Fails like hnswlib's binding when a
// walk finds fewer than k allowed live nodes.
int graph_search(void *handle, const float *queries, size_t nq, size_t k, int threads, const uint8_t *mask,
                 size_t mask_len, int64_t *out_labels, float *out_dists) {
    Graph *g = static_cast<Graph *>(handle);
    return guarded([&] {
        MaskFilter filter(mask, mask_len);
        hnswlib::BaseFilterFunctor *allowed = mask ? &filter : nullptr;
        parallel_rows(nq, threads, [&](size_t row) {
            const float *q = queries + row * g->dim;
            std::vector<char> code(g->code_size());
            g->encode(q, code.data());
            // Coded graphs keep the whole beam (ef) and rescore it: the walk's distances are rounded ones.
            size_t fetch = g->kind == F32 ? k : std::max(k, g->hnsw->ef_);
            auto found = g->hnsw->searchKnn(code.data(), fetch, allowed);
            if (found.size() < k)
                throw std::runtime_error("Cannot return the results in a contiguous 2D array. Probably ef or M is "
                                         "too small");
            std::vector<std::pair<float, int64_t>> hits;
            hits.reserve(k);
            std::vector<float> decoded(g->kind == F32 ? 0 : g->dim);
            while (!found.empty()) {
                auto [dist, label] = found.top();
                found.pop();
                if (g->kind != F32) {
                    int64_t id = g->internal(static_cast<int64_t>(label));
                    g->decode(g->hnsw->getDataByInternalId(static_cast<hnswlib::tableint>(id)), decoded.data());
                    dist = g->exact(q, decoded.data());
                }
                hits.emplace_back(dist, static_cast<int64_t>(label));
            }
            std::sort(hits.begin(), hits.end());
            for (size_t i = 0; i < k; ++i) {
                out_dists[row * k + i] = hits[i].first;
                out_labels[row * k + i] = hits[i].second;
            }
        });
    });
}

}  // extern "C"
