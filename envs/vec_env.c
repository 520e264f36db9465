/* vec_env.c — N copies of one game stepped together, with automatic reset,
 * in parallel over copies with OpenMP. Each copy writes only its own rows of
 * the caller's buffers, so the result does not depend on the thread count. */
#include <string.h>

#include "tessera/env.h"
#include "tessera/rng.h"

tsr_status tsr_vec_env_new(tsr_vec_env **out, tsr_env_game game, const tsr_env_options *options,
                           int num_envs, uint64_t seed, tsr_error *err)
{
    *out = NULL;
    if (num_envs < 1)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "a vector env needs at least 1 copy, got %d", num_envs);
    tsr_env first;
    tsr_status st = tsr_env_init(&first, game, options, seed, err);
    if (st != TSR_STATUS_OK) return st;

    tsr_vec_env *venv = tsr_malloc(sizeof *venv);
    venv->num_envs = num_envs;
    venv->envs = tsr_aligned_alloc(64, (size_t)num_envs * sizeof(tsr_env));
    memcpy(&venv->envs[0], &first, sizeof first); /* padding bytes included */
    for (int i = 1; i < num_envs; i++) {
        st = tsr_env_init(&venv->envs[i], game, &first.options, tsr_vec_env_copy_seed(seed, i),
                          err);
        TSR_ASSERT(st == TSR_STATUS_OK); /* same options as copy 0 */
    }
    venv->spec = tsr_env_get_spec(&first);
    *out = venv;
    return TSR_STATUS_OK;
}

uint64_t tsr_vec_env_copy_seed(uint64_t seed, int copy)
{
    if (copy == 0) return seed;
    tsr_rng rng;
    tsr_rng_init(&rng, seed, TSR_RNG_STREAM_VEC_ENV_COPY + (uint64_t)copy);
    return tsr_rng_u64(&rng);
}

void tsr_vec_env_free(tsr_vec_env *venv)
{
    if (!venv) return;
    tsr_free(venv->envs);
    tsr_free(venv);
}

void tsr_vec_env_reset(tsr_vec_env *venv, void *obs)
{
    const int n = venv->num_envs;
    const size_t obs_bytes = venv->spec.obs_bytes;
#pragma omp parallel for if (n >= TSR_VEC_ENV_PARALLEL_MIN) schedule(static)
    for (int i = 0; i < n; i++) {
        tsr_env_reset(&venv->envs[i]);
        tsr_env_observe(&venv->envs[i], (char *)obs + (size_t)i * obs_bytes);
    }
}

void tsr_vec_env_observe(const tsr_vec_env *venv, void *obs)
{
    const int n = venv->num_envs;
    const size_t obs_bytes = venv->spec.obs_bytes;
#pragma omp parallel for if (n >= TSR_VEC_ENV_PARALLEL_MIN) schedule(static)
    for (int i = 0; i < n; i++)
        tsr_env_observe(&venv->envs[i], (char *)obs + (size_t)i * obs_bytes);
}

/* Records step `r` of copy i and, if its episode ended, resets it. */
static void finish_step(tsr_vec_env *venv, int i, tsr_env_step_result r,
                        const tsr_vec_env_out *out)
{
    tsr_env *env = &venv->envs[i];
    const size_t obs_bytes = venv->spec.obs_bytes;
    out->reward[i] = r.reward;
    out->terminated[i] = r.terminated;
    out->truncated[i] = r.truncated;
    if (r.terminated || r.truncated) {
        if (out->final_obs) tsr_env_observe(env, (char *)out->final_obs + (size_t)i * obs_bytes);
        if (out->episode_return) out->episode_return[i] = (float)env->episode_return;
        if (out->episode_length) out->episode_length[i] = env->episode_length;
        tsr_env_reset(env);
    }
    tsr_env_observe(env, (char *)out->obs + (size_t)i * obs_bytes);
}

void tsr_vec_env_step(tsr_vec_env *venv, const int32_t *actions, const tsr_vec_env_out *out)
{
    const int n = venv->num_envs;
#pragma omp parallel for if (n >= TSR_VEC_ENV_PARALLEL_MIN) schedule(static)
    for (int i = 0; i < n; i++)
        finish_step(venv, i, tsr_env_step(&venv->envs[i], actions[i]), out);
}

void tsr_vec_env_step_continuous(tsr_vec_env *venv, const float *actions,
                                 const tsr_vec_env_out *out)
{
    const int n = venv->num_envs;
#pragma omp parallel for if (n >= TSR_VEC_ENV_PARALLEL_MIN) schedule(static)
    for (int i = 0; i < n; i++)
        finish_step(venv, i,
                    tsr_env_step_continuous(&venv->envs[i],
                                            actions + (size_t)i * TSR_ENV_CONTINUOUS_DIM),
                    out);
}

static const char *action_mode(const tsr_env_options *options)
{
    return options->continuous ? "continuous" : options->minimal_action_set ? "minimal" : "full";
}

size_t tsr_vec_env_state_size(const tsr_vec_env *venv)
{
    return (size_t)venv->num_envs * sizeof(tsr_env);
}

const void *tsr_vec_env_state_bytes(const tsr_vec_env *venv) { return venv->envs; }

tsr_status tsr_vec_env_state_restore(tsr_vec_env *venv, const void *bytes, size_t size,
                                     tsr_error *err)
{
    const size_t expected = tsr_vec_env_state_size(venv);
    if (size != expected)
        return tsr_error_set(err, TSR_STATUS_FORMAT,
                             "vector env state is %zu bytes; expected %zu (%d copies of %zu)",
                             size, expected, venv->num_envs, sizeof(tsr_env));
    /* Check every copy before changing any, so a failure leaves venv whole. */
    for (int i = 0; i < venv->num_envs; i++) {
        tsr_env probe;
        const char *copy = (const char *)bytes + (size_t)i * sizeof(tsr_env);
        tsr_status st = tsr_env_state_restore(&probe, copy, sizeof(tsr_env), err);
        if (st != TSR_STATUS_OK) return st;
        if (probe.game != venv->envs[0].game ||
            probe.options.continuous != venv->envs[0].options.continuous ||
            probe.options.minimal_action_set != venv->envs[0].options.minimal_action_set)
            return tsr_error_set(err, TSR_STATUS_FORMAT,
                                 "vector env state: copy %d is %s with actions %s; expected %s "
                                 "with actions %s",
                                 i, tsr_env_game_name(probe.game), action_mode(&probe.options),
                                 venv->spec.name, action_mode(&venv->envs[0].options));
    }
    memcpy(venv->envs, bytes, expected);
    return TSR_STATUS_OK;
}
