//! Data-parallel training API (native-trainer/src/distributed/): the `[distributed]` config;
//! two ranks as threads of one process (`ThreadGroup`) on the CPU backend (Autodiff<Flex>)
//! averaging gradients in buckets, broadcasting weights and gathering contrastive features,
//! checked against single-rank references; and the rendezvous between processes, whose rank 0
//! names a rank that was killed (two processes of this test binary).

use brainmvp_trainer::distributed;

use distributed::{DistributedConfig, Engine};

#[derive(serde::Deserialize)]
struct ConfigFile {
    distributed: DistributedConfig,
}

fn parse(text: &str) -> anyhow::Result<DistributedConfig> {
    let file: ConfigFile = toml::from_str(text)?;
    file.distributed.validate()?;
    Ok(file.distributed)
}

#[test]
fn config_defaults_to_one_device() {
    let config = parse("[distributed]\n").unwrap();
    assert_eq!(config, DistributedConfig::default());
    assert_eq!(config.engine, Engine::Auto);
    // 25 MB buckets of f32 values.
    assert_eq!(config.bucket_values(), 6_250_000);
}

#[test]
fn config_reads_engine_buckets_and_timeout() {
    let config = parse(
        "[distributed]\nengine = \"nccl\"\nbucket_mb = 0.5\ntimeout_s = 30\ngather_negatives = true\n",
    )
    .unwrap();
    assert_eq!(config.engine, Engine::Nccl);
    assert_eq!(config.bucket_values(), 125_000);
    assert_eq!(config.timeout_s, 30);
    assert!(config.gather_negatives);
}

#[test]
fn config_rejects_inconsistent_sections() {
    let cases = [
        ("local_ranks = 0", "local_ranks"),
        ("devices = 0", "local_ranks = 0"),
        ("bucket_mb = 0", "bucket_mb"),
        ("timeout_s = 0", "timeout_s"),
        ("engine = \"gloo\"", "unknown variant"),
        // The burn-collective keys are gone: ranks come from the launcher now.
        ("nodes = 2", "unknown field"),
    ];
    for (body, expected) in cases {
        let error = parse(&format!("[distributed]\n{body}\n")).unwrap_err();
        let message = format!("{error:#}");
        assert!(message.contains(expected), "{body:?}: {message}");
    }
}

#[cfg(feature = "flex")]
mod flex {
    use brainmvp_trainer::distributed::{self, DistributedConfig};
    use burn::backend::{Autodiff, Flex};
    use burn::module::{Module, ModuleVisitor, Param};
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
    use burn::tensor::{Tensor, TensorData};

    pub type Ad = Autodiff<Flex>;
    pub type Device = burn::tensor::Device<Ad>;

    /// A linear layer plus an offset that only some batches use (as a modality template).
    #[derive(Module, Debug)]
    pub struct TinyNet<B: burn::tensor::backend::Backend> {
        linear: Linear<B>,
        offset: Param<Tensor<B, 1>>,
    }

    impl<B: burn::tensor::backend::Backend> TinyNet<B> {
        pub fn new(seed_shift: f32, device: &B::Device) -> Self {
            let mut linear = LinearConfig::new(4, 3).init(device);
            let weights: Vec<f32> = (0..12)
                .map(|i| (i as f32 * 0.37 + seed_shift).sin())
                .collect();
            linear.weight = Param::from_data(TensorData::new(weights, [4, 3]), device);
            let bias = TensorData::new(vec![0.05f32, seed_shift, -0.1], [3]);
            linear.bias = Some(Param::from_data(bias, device));
            let offset = Param::from_data(TensorData::new(vec![0.1f32, -0.2, 0.3], [3]), device);
            Self { linear, offset }
        }

        /// `tanh(x W + b) (+ offset)`, squared error against `target`.
        pub fn loss(
            &self,
            input: Tensor<B, 2>,
            target: Tensor<B, 2>,
            use_offset: bool,
        ) -> Tensor<B, 1> {
            let mut output = self.linear.forward(input).tanh();
            if use_offset {
                output = output + self.offset.val().unsqueeze::<2>();
            }
            (output - target).powf_scalar(2.0).mean()
        }
    }

    /// One rank's batch: input rows, target rows, and whether it uses the offset.
    pub fn batch(this_rank: usize, device: &Device) -> (Tensor<Ad, 2>, Tensor<Ad, 2>, bool) {
        let input: Vec<f32> = (0..8)
            .map(|i| ((i + 5 * this_rank) as f32 * 0.9).cos())
            .collect();
        let target: Vec<f32> = (0..6)
            .map(|i| ((i * 3 + this_rank) as f32 * 0.4).sin())
            .collect();
        (
            Tensor::from_data(TensorData::new(input, [2, 4]), device),
            Tensor::from_data(TensorData::new(target, [2, 3]), device),
            this_rank == 0,
        )
    }

    /// Values of every float parameter (or of its gradient) in visiting order.
    pub struct Collect<'a> {
        grads: Option<&'a GradientsParams>,
        values: Vec<Vec<f32>>,
    }

    impl ModuleVisitor<Ad> for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<Ad, D>>) {
            let data = match self.grads {
                Some(grads) => match grads.get::<Flex, D>(param.id) {
                    Some(grad) => grad.into_data(),
                    None => {
                        Tensor::<Flex, D>::zeros(param.lazy_shape(), &param.device()).into_data()
                    }
                },
                None => param.val().into_data(),
            };
            self.values.push(data.to_vec::<f32>().unwrap());
        }
    }

    pub fn values(model: &TinyNet<Ad>, grads: Option<&GradientsParams>) -> Vec<Vec<f32>> {
        let mut collect = Collect {
            grads,
            values: Vec::new(),
        };
        model.visit(&mut collect);
        collect.values
    }

    pub fn gradients(model: &TinyNet<Ad>, this_rank: usize, device: &Device) -> GradientsParams {
        let (input, target, use_offset) = batch(this_rank, device);
        let loss = model.loss(input, target, use_offset);
        GradientsParams::from_grads::<Ad, _>(loss.backward(), model)
    }

    /// What a rank reports: averaged gradients, weights after broadcast, weights after one step.
    pub struct PeerResult {
        pub grads: Vec<Vec<f32>>,
        pub start_weights: Vec<Vec<f32>>,
        pub stepped_weights: Vec<Vec<f32>>,
    }

    /// One data-parallel step of rank `start`, whose replica starts from its own weights.
    pub fn train_step(
        start: distributed::RankStart,
        config: &DistributedConfig,
    ) -> anyhow::Result<PeerResult> {
        let device = Device::default();
        let this_rank = distributed::start_rank::<Ad>(start, device, config)?;
        let model = TinyNet::<Ad>::new(this_rank.rank() as f32, &device);
        let model = distributed::broadcast_module(&this_rank, model)?;
        let start_weights = values(&model, None);
        let grads = gradients(&model, this_rank.rank(), &device);
        let grads = distributed::average_gradients(&this_rank, grads, &model, &mut [])?;
        let grad_values = values(&model, Some(&grads));
        let mut optimizer = AdamWConfig::new()
            .with_weight_decay(1e-5)
            .init::<Ad, TinyNet<Ad>>();
        let model = optimizer.step(1e-2, model, grads);
        let stepped_weights = values(&model, None);
        distributed::finish(this_rank)?;
        Ok(PeerResult {
            grads: grad_values,
            start_weights,
            stepped_weights,
        })
    }

    pub fn assert_close(what: &str, actual: &[Vec<f32>], expected: &[Vec<f32>], tolerance: f32) {
        assert_eq!(actual.len(), expected.len());
        for (a, e) in actual.iter().zip(expected) {
            assert_eq!(a.len(), e.len());
            for (x, y) in a.iter().zip(e) {
                assert!((x - y).abs() <= tolerance, "{what}: {a:?} vs {e:?}");
            }
        }
    }

    /// Features `[2, 3]` of rank `rank`, a leaf that records gradients.
    pub fn features(rank: usize, device: &Device) -> Tensor<Ad, 2> {
        let values: Vec<f32> = (0..6).map(|i| (i + 10 * rank) as f32 + 0.5).collect();
        Tensor::<Ad, 2>::from_data(TensorData::new(values, [2, 3]), device).require_grad()
    }
}

#[cfg(feature = "flex")]
mod threads {
    use super::flex::*;
    use brainmvp_trainer::distributed::{self, DistributedConfig, RankStart, ThreadGroup};
    use burn::tensor::TensorData;
    use std::time::Duration;

    /// Runs `rank` on every member of a fresh two-rank thread group.
    fn run_ranks<T: Send + 'static>(
        config: DistributedConfig,
        this_rank: impl Fn(RankStart, &DistributedConfig) -> anyhow::Result<T>
            + Send
            + Sync
            + Copy
            + 'static,
    ) -> Vec<T> {
        let threads: Vec<_> = ThreadGroup::new(2, Duration::from_secs(60))
            .into_iter()
            .map(|member| {
                let config = config.clone();
                std::thread::spawn(move || this_rank(RankStart::Thread(member), &config))
            })
            .collect();
        threads
            .into_iter()
            .map(|thread| match thread.join() {
                Ok(Ok(result)) => result,
                Ok(Err(error)) => panic!("rank failed: {error:#}"),
                Err(_) => panic!("rank thread panicked"),
            })
            .collect()
    }

    /// Both ranks started from rank 0's weights, hold the mean of the two single-batch
    /// gradients, and end the AdamW step with identical, moved weights.
    fn check_data_parallel_step(what: &str, results: &[PeerResult]) {
        let device = Device::default();
        let model = TinyNet::<Ad>::new(0.0, &device);
        let g0 = values(&model, Some(&gradients(&model, 0, &device)));
        let g1 = values(&model, Some(&gradients(&model, 1, &device)));
        let reference: Vec<Vec<f32>> = g0
            .iter()
            .zip(&g1)
            .map(|(a, b)| a.iter().zip(b).map(|(x, y)| (x + y) / 2.0).collect())
            .collect();
        // Rank 1 never used the offset: its zero gradient halves rank 0's in the mean.
        assert!(
            reference[2].iter().all(|g| g.abs() > 1e-4),
            "{:?}",
            reference[2]
        );
        let initial = values(&model, None);
        assert_eq!(results.len(), 2, "{what}");
        for result in results {
            assert_close(what, &result.start_weights, &initial, 0.0);
            assert_close(what, &result.grads, &reference, 1e-6);
        }
        assert_close(
            what,
            &results[0].stepped_weights,
            &results[1].stepped_weights,
            0.0,
        );
        let moved = results[0].stepped_weights[0]
            .iter()
            .zip(&initial[0])
            .any(|(after, before)| (after - before).abs() > 1e-3);
        assert!(moved, "{what}: the AdamW step left the weights unchanged");
    }

    #[test]
    fn two_ranks_average_gradients_and_stay_identical() {
        // One bucket for everything, and buckets of 8 bytes (each tensor alone, the 4x3 weight
        // in a bucket larger than the limit): the same result.
        for bucket_mb in [25.0, 8e-6] {
            let config = DistributedConfig {
                bucket_mb,
                ..Default::default()
            };
            let results = run_ranks(config, train_step);
            check_data_parallel_step(&format!("bucket_mb = {bucket_mb}"), &results);
        }
    }

    #[test]
    fn loss_values_ride_along_and_come_back_averaged() {
        let results = run_ranks(DistributedConfig::default(), |start, config| {
            let device = Device::default();
            let this_rank = distributed::start_rank::<Ad>(start, device, config)?;
            let model = TinyNet::<Ad>::new(0.0, &device);
            let grads = gradients(&model, this_rank.rank(), &device);
            let mut losses = [
                1.0 + this_rank.rank() as f32,
                -2.0 * this_rank.rank() as f32,
            ];
            distributed::average_gradients(&this_rank, grads, &model, &mut losses)?;
            distributed::finish(this_rank)?;
            Ok(losses)
        });
        assert_eq!(results, vec![[1.5, -1.0], [1.5, -1.0]]);
    }

    #[test]
    fn gathered_features_keep_local_gradients() {
        let config = DistributedConfig {
            gather_negatives: true,
            ..Default::default()
        };
        let results = run_ranks(config, |start, config| {
            let device = Device::default();
            let this_rank = distributed::start_rank::<Ad>(start, device, config)?;
            let local = features(this_rank.rank(), &device);
            let gathered = distributed::gather_features(&this_rank, local.clone())?;
            let weights: Vec<f32> = (0..12).map(|i| i as f32 - 3.0).collect();
            let weights =
                burn::tensor::Tensor::<Ad, 2>::from_data(TensorData::new(weights, [4, 3]), &device);
            let grads = (gathered.clone() * weights).sum().backward();
            let local_grad = local.grad(&grads).expect("local rows carry gradients");
            distributed::finish(this_rank)?;
            Ok((
                gathered.into_data().to_vec::<f32>().unwrap(),
                local_grad.into_data().to_vec::<f32>().unwrap(),
            ))
        });
        let device = Device::default();
        let mut expected = features(0, &device).into_data().to_vec::<f32>().unwrap();
        expected.extend(features(1, &device).into_data().to_vec::<f32>().unwrap());
        for (rank, (gathered, local_grad)) in results.iter().enumerate() {
            assert_eq!(
                gathered, &expected,
                "rows of every rank, in rank order, exactly"
            );
            // d(sum(gathered * W)) / d(local) is W's rows of this rank's block.
            let block: Vec<f32> = (rank * 6..rank * 6 + 6).map(|i| i as f32 - 3.0).collect();
            assert_eq!(local_grad, &block);
        }
    }

    #[test]
    fn different_models_are_refused_and_diverged_replicas_found() {
        let results = run_ranks(DistributedConfig::default(), |start, config| {
            let device = Device::default();
            let this_rank = distributed::start_rank::<Ad>(start, device, config)?;
            let model = TinyNet::<Ad>::new(this_rank.rank() as f32, &device);
            // Not broadcast: the replicas differ in value, which the replica check finds.
            let diverged = distributed::check_replicas(&this_rank, &model).map(|_| ());
            let refused = match this_rank.rank() {
                0 => distributed::broadcast_module(&this_rank, model).map(|_| ()),
                _ => {
                    let other = burn::nn::LinearConfig::new(4, 3).init::<Ad>(&device);
                    distributed::broadcast_module(&this_rank, other).map(|_| ())
                }
            };
            distributed::finish(this_rank)?;
            Ok((
                diverged.map_err(|e| format!("{e:#}")),
                refused.map_err(|e| format!("{e:#}")),
            ))
        });
        for (diverged, refused) in results {
            let diverged = diverged.unwrap_err();
            assert!(
                diverged.contains("ranks [1] hold weights different"),
                "{diverged}"
            );
            let refused = refused.unwrap_err();
            assert!(refused.contains("ranks [1] hold parameters"), "{refused}");
        }
    }

    #[test]
    fn one_rank_is_the_identity() {
        let device = Device::default();
        let config = DistributedConfig {
            gather_negatives: true,
            ..Default::default()
        };
        let this_rank = distributed::start_rank::<Ad>(RankStart::Single, device, &config).unwrap();
        let model = TinyNet::<Ad>::new(0.0, &device);
        let grads = gradients(&model, 0, &device);
        let before = values(&model, Some(&grads));
        let grads = distributed::average_gradients(&this_rank, grads, &model, &mut [1.0]).unwrap();
        assert_close("gradients", &values(&model, Some(&grads)), &before, 0.0);
        let local = features(0, &device);
        let gathered = distributed::gather_features(&this_rank, local.clone()).unwrap();
        assert_eq!(gathered.into_data(), local.into_data());
        distributed::finish(this_rank).unwrap();
    }
}

/// Two processes of this test binary meet at a rendezvous on localhost; one is killed with
/// SIGKILL; the other must exit at once with status 3 and a message naming it.
mod rendezvous {
    use brainmvp_trainer::distributed::watch::{Rendezvous, EXIT_PEER_FAILED};
    use std::io::{BufRead, BufReader};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    fn free_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }

    fn spawn_rank(rank: usize, port: u16) -> Child {
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "distributed::rendezvous::worker",
                "--ignored",
                "--nocapture",
            ])
            .env("BRAINMVP_TEST_RANK", rank.to_string())
            .env("BRAINMVP_TEST_PORT", port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Waits for the worker's `JOINED` line.
    fn wait_joined(child: &mut Child) {
        let stdout = child.stdout.take().unwrap();
        let line = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find(|line| line.starts_with("JOINED"));
        assert!(line.is_some(), "the worker did not join");
    }

    /// Waits (at most 20 s) for `child` to exit; returns its status code and stderr.
    fn exit_of(mut child: Child) -> (Option<i32>, String) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                child.kill().unwrap();
                panic!("the surviving rank did not exit within 20 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let output = child.wait_with_output().unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    fn killed_rank_is_named(victim: usize) {
        let port = free_port();
        let mut ranks = vec![spawn_rank(0, port), spawn_rank(1, port)];
        for rank in ranks.iter_mut() {
            wait_joined(rank);
        }
        let mut killed = ranks.remove(victim);
        let pid = killed.id();
        killed.kill().unwrap(); // SIGKILL: no chance to say goodbye
        killed.wait().unwrap();
        let (code, stderr) = exit_of(ranks.remove(0));
        assert_eq!(code, Some(EXIT_PEER_FAILED), "{stderr}");
        let expected = match victim {
            1 => format!("brainmvp rank 0: error: rank 1 (pid {pid} on "),
            _ => "brainmvp rank 1: error: lost rank 0".to_string(),
        };
        assert!(
            stderr.contains(&expected),
            "expected {expected:?} in:\n{stderr}"
        );
    }

    #[test]
    fn a_killed_rank_stops_rank_zero_naming_it() {
        killed_rank_is_named(1);
    }

    #[test]
    fn a_killed_rank_zero_stops_the_others() {
        killed_rank_is_named(0);
    }

    /// One rank of the tests above (does nothing when run by hand): joins, then waits 60 s,
    /// as a rank busy training would.
    #[test]
    #[ignore = "child process of the rendezvous tests"]
    fn worker() {
        let (Ok(rank), Ok(port)) = (
            std::env::var("BRAINMVP_TEST_RANK"),
            std::env::var("BRAINMVP_TEST_PORT"),
        ) else {
            return;
        };
        let port: u16 = port.parse().unwrap();
        let timeout = Duration::from_secs(20);
        let _rendezvous = match rank.as_str() {
            "0" => {
                let (listener, _) = Rendezvous::listen(port).unwrap();
                Rendezvous::serve(listener, 2, b"", timeout).unwrap()
            }
            _ => Rendezvous::join(1, "127.0.0.1", port, timeout).unwrap().0,
        };
        println!("JOINED");
        std::thread::sleep(Duration::from_secs(60));
    }
}
