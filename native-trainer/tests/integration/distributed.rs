//! Data-parallel training API (native-trainer/src/distributed.rs): the `[distributed]` config,
//! and, with the `collective` feature, two peers (threads) on the CPU backend (Autodiff<Flex>)
//! averaging gradients, broadcasting weights and gathering contrastive features through
//! burn-collective, checked against single-peer references.

use brainmvp_trainer::distributed;

use distributed::{DistributedConfig, ReduceStrategy};

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
fn config_defaults_to_one_peer() {
    let config = parse("[distributed]\n").unwrap();
    assert_eq!(config, DistributedConfig::default());
    assert_eq!(config.world_size(), 1);
    assert_eq!(config.effective_batch(3, 2), 6);
}

#[test]
fn config_multi_node_ranks_and_batch() {
    let config = parse(
        "[distributed]\ndevices = 4\nnodes = 3\nnode_rank = 2\n\
         orchestrator = \"ws://10.0.0.1:3000\"\nnode_address = \"ws://10.0.0.3:3001\"\n\
         local_strategy = \"tree\"\nglobal_strategy = \"ring\"\ngather_negatives = true\n",
    )
    .unwrap();
    assert_eq!(config.world_size(), 12);
    // Node 2 holds global ranks 8..12.
    assert_eq!(config.global_rank(0), 8);
    assert_eq!(config.global_rank(3), 11);
    assert_eq!(config.data_service_port().unwrap(), 3001);
    assert_eq!(config.global_strategy, ReduceStrategy::Ring);
    // 3 subjects per device, 2 accumulation steps, 12 replicas.
    assert_eq!(config.effective_batch(3, 2), 72);
}

#[test]
fn config_rejects_inconsistent_sections() {
    let cases = [
        ("devices = 0", "devices"),
        ("nodes = 2\nnode_rank = 2", "node_rank"),
        ("tree_arity = 1", "tree_arity"),
        ("nodes = 2", "orchestrator"),
        (
            "nodes = 2\norchestrator = \"10.0.0.1:3000\"\nnode_address = \"ws://b:1\"",
            "ws://host:port",
        ),
        (
            "nodes = 2\norchestrator = \"ws://a:3000\"\nnode_address = \"ws://b:http\"",
            "not a port",
        ),
        ("devices = 2\nunknown_key = 1", "unknown"),
    ];
    for (body, expected) in cases {
        let error = parse(&format!("[distributed]\n{body}\n")).unwrap_err();
        let message = format!("{error:#}");
        assert!(message.contains(expected), "{body:?}: {message}");
    }
}

#[cfg(all(feature = "flex", feature = "collective"))]
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

    /// One peer's batch: input rows, target rows, and whether it uses the offset.
    pub fn batch(peer: usize, device: &Device) -> (Tensor<Ad, 2>, Tensor<Ad, 2>, bool) {
        let input: Vec<f32> = (0..8)
            .map(|i| ((i + 5 * peer) as f32 * 0.9).cos())
            .collect();
        let target: Vec<f32> = (0..6)
            .map(|i| ((i * 3 + peer) as f32 * 0.4).sin())
            .collect();
        (
            Tensor::from_data(TensorData::new(input, [2, 4]), device),
            Tensor::from_data(TensorData::new(target, [2, 3]), device),
            peer == 0,
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

    pub fn gradients(model: &TinyNet<Ad>, peer: usize, device: &Device) -> GradientsParams {
        let (input, target, use_offset) = batch(peer, device);
        let loss = model.loss(input, target, use_offset);
        GradientsParams::from_grads::<Ad, _>(loss.backward(), model)
    }

    /// What a peer reports: averaged gradients, weights after broadcast, weights after one step.
    pub struct PeerResult {
        pub grads: Vec<Vec<f32>>,
        pub start_weights: Vec<Vec<f32>>,
        pub stepped_weights: Vec<Vec<f32>>,
    }

    /// One data-parallel step of peer `index`, whose replica starts from its own weights.
    pub fn train_step(index: usize, config: &DistributedConfig) -> anyhow::Result<PeerResult> {
        let device = Device::default();
        let peer = distributed::start_peer::<Ad>(index, device, config)?;
        let model = TinyNet::<Ad>::new(index as f32, &device);
        let model = distributed::broadcast_module(&peer, model)?;
        let start_weights = values(&model, None);
        let grads = gradients(&model, peer.rank(), &device);
        let grads = distributed::average_gradients(&peer, grads, &model)?;
        let grad_values = values(&model, Some(&grads));
        let mut optimizer = AdamWConfig::new()
            .with_weight_decay(1e-5)
            .init::<Ad, TinyNet<Ad>>();
        let model = optimizer.step(1e-2, model, grads);
        let stepped_weights = values(&model, None);
        distributed::finish(peer)?;
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

    /// Features `[2, 3]` of peer `rank`, a leaf that records gradients.
    pub fn features(rank: usize, device: &Device) -> Tensor<Ad, 2> {
        let values: Vec<f32> = (0..6).map(|i| (i + 10 * rank) as f32 + 0.5).collect();
        Tensor::<Ad, 2>::from_data(TensorData::new(values, [2, 3]), device).require_grad()
    }
}

#[cfg(all(feature = "flex", not(feature = "collective")))]
#[test]
fn several_peers_need_the_collective_feature() {
    use burn::backend::{Autodiff, Flex};
    let config = DistributedConfig {
        devices: 2,
        ..Default::default()
    };
    let error =
        distributed::start_peer::<Autodiff<Flex>>(0, Default::default(), &config).unwrap_err();
    assert!(error.to_string().contains("collective"), "{error}");
}

#[cfg(all(feature = "flex", feature = "collective"))]
mod collective {
    use super::flex::*;
    use brainmvp_trainer::distributed::{self, DistributedConfig};
    use burn::tensor::TensorData;
    use std::sync::Mutex;

    /// burn-collective keeps one server per backend and process: the tests take turns.
    static SERVER: Mutex<()> = Mutex::new(());

    fn run_peers<T: Send + 'static>(
        config: DistributedConfig,
        peer: impl Fn(usize, &DistributedConfig) -> anyhow::Result<T> + Send + Sync + Copy + 'static,
    ) -> Vec<T> {
        let _turn = SERVER
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let threads: Vec<_> = (0..config.devices)
            .map(|index| {
                let config = config.clone();
                std::thread::spawn(move || peer(index, &config))
            })
            .collect();
        threads
            .into_iter()
            .map(|thread| match thread.join() {
                Ok(Ok(result)) => result,
                Ok(Err(error)) => panic!("peer failed: {error:#}"),
                Err(_) => panic!("peer thread panicked"),
            })
            .collect()
    }

    /// Both peers started from rank 0's weights, hold the mean of the two single-batch gradients,
    /// and end the AdamW step with identical, moved weights.
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
        // Peer 1 never used the offset: its zero gradient halves peer 0's in the mean.
        assert!(
            reference[2].iter().all(|g| g.abs() > 1e-4),
            "{:?}",
            reference[2]
        );
        let initial = values(&model, None);
        assert_eq!(results.len(), 2, "{what}");
        for result in results {
            assert_close(what, &result.start_weights, &initial, 0.0);
            assert_close(what, &result.grads, &reference, 1e-5);
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
    fn two_peers_average_gradients_and_stay_identical() {
        for strategy in [
            distributed::ReduceStrategy::Tree,
            distributed::ReduceStrategy::Ring,
            distributed::ReduceStrategy::Centralized,
        ] {
            let config = DistributedConfig {
                devices: 2,
                local_strategy: strategy,
                ..Default::default()
            };
            let results = run_peers(config, train_step);
            check_data_parallel_step(&format!("{strategy:?}"), &results);
        }
    }

    fn free_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }

    /// Two nodes (two processes of this test binary, one peer each) meet through burn's global
    /// orchestrator, served by this process. With burn-collective 0.21.0 both nodes register and
    /// finish their first global all-reduce, then the second one never completes (Ring and Tree
    /// alike; docs/distributed.md): run it with `--ignored` to check a newer burn.
    #[test]
    #[ignore = "burn-collective 0.21.0: the second global all-reduce hangs (docs/distributed.md)"]
    fn two_nodes_through_the_orchestrator() {
        let orchestrator_port = free_port();
        std::thread::spawn(move || distributed::run_orchestrator(orchestrator_port));
        let children: Vec<_> = (0..2)
            .map(|rank| {
                std::process::Command::new(std::env::current_exe().unwrap())
                    .args([
                        "--exact",
                        "collective::node_worker",
                        "--ignored",
                        "--nocapture",
                    ])
                    .env("BRAINMVP_TEST_NODE_RANK", rank.to_string())
                    .env(
                        "BRAINMVP_TEST_ORCHESTRATOR",
                        format!("ws://127.0.0.1:{orchestrator_port}"),
                    )
                    .env(
                        "BRAINMVP_TEST_NODE",
                        format!("ws://127.0.0.1:{}", free_port()),
                    )
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut children = children;
        while children
            .iter_mut()
            .any(|child| child.try_wait().unwrap().is_none())
        {
            if std::time::Instant::now() > deadline {
                children
                    .iter_mut()
                    .for_each(|child| child.kill().unwrap_or(()));
                let logs: Vec<String> = children
                    .into_iter()
                    .map(|child| {
                        let output = child.wait_with_output().unwrap();
                        let stdout = String::from_utf8_lossy(&output.stdout);
                        let stderr = String::from_utf8_lossy(&output.stderr);
                        format!("{stdout}\n{stderr}")
                    })
                    .collect();
                panic!("the nodes did not finish within 60 s:\n{}", logs.join("\n"));
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let mut results = Vec::new();
        for child in children {
            let output = child.wait_with_output().unwrap();
            let stdout = String::from_utf8_lossy(&output.stdout);
            let line = stdout
                .lines()
                .find_map(|line| line.strip_prefix("NODE-RESULT "))
                .unwrap_or_else(|| {
                    let stderr = String::from_utf8_lossy(&output.stderr);
                    panic!("node printed no result:\n{stdout}\n{stderr}")
                });
            let (grads, start_weights, stepped_weights) = serde_json::from_str(line).unwrap();
            results.push(PeerResult {
                grads,
                start_weights,
                stepped_weights,
            });
        }
        check_data_parallel_step("two nodes", &results);
    }

    /// One node of `two_nodes_through_the_orchestrator` (does nothing when run by hand).
    #[test]
    #[ignore = "child process of two_nodes_through_the_orchestrator"]
    fn node_worker() {
        let Ok(rank) = std::env::var("BRAINMVP_TEST_NODE_RANK") else {
            return;
        };
        let config = DistributedConfig {
            nodes: 2,
            node_rank: rank.parse().unwrap(),
            orchestrator: std::env::var("BRAINMVP_TEST_ORCHESTRATOR").ok(),
            node_address: std::env::var("BRAINMVP_TEST_NODE").ok(),
            ..Default::default()
        };
        let result = train_step(0, &config).unwrap();
        let json =
            serde_json::to_string(&(result.grads, result.start_weights, result.stepped_weights));
        println!("NODE-RESULT {}", json.unwrap());
    }

    #[test]
    fn gathered_features_keep_local_gradients() {
        let config = DistributedConfig {
            devices: 2,
            gather_negatives: true,
            ..Default::default()
        };
        let results = run_peers(config, |index, config| {
            let device = Device::default();
            let peer = distributed::start_peer::<Ad>(index, device, config)?;
            let local = features(peer.rank(), &device);
            let gathered = distributed::gather_features(&peer, local.clone())?;
            let weights: Vec<f32> = (0..12).map(|i| i as f32 - 3.0).collect();
            let weights =
                burn::tensor::Tensor::<Ad, 2>::from_data(TensorData::new(weights, [4, 3]), &device);
            let grads = (gathered.clone() * weights).sum().backward();
            let local_grad = local.grad(&grads).expect("local rows carry gradients");
            distributed::finish(peer)?;
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
                "rows of every peer, in rank order, exactly"
            );
            // d(sum(gathered * W)) / d(local) is W's rows of this peer's block.
            let block: Vec<f32> = (rank * 6..rank * 6 + 6).map(|i| i as f32 - 3.0).collect();
            assert_eq!(local_grad, &block);
        }
    }

    #[test]
    fn replicas_built_apart_are_refused_without_broadcast() {
        let config = DistributedConfig {
            devices: 2,
            ..Default::default()
        };
        let _turn = SERVER
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let threads: Vec<_> = (0..2)
            .map(|index| {
                let config = config.clone();
                std::thread::spawn(move || {
                    let device = Device::default();
                    let peer = distributed::start_peer::<Ad>(index, device, &config)?;
                    // Same weights, but each replica has its own random parameter ids.
                    let model = TinyNet::<Ad>::new(0.0, &device);
                    let grads = gradients(&model, index, &device);
                    let outcome = distributed::average_gradients(&peer, grads, &model).map(|_| ());
                    distributed::finish(peer)?;
                    anyhow::Ok(outcome)
                })
            })
            .collect();
        for thread in threads {
            let outcome = thread.join().unwrap().unwrap();
            let message = format!("{:#}", outcome.unwrap_err());
            assert!(message.contains("different parameters"), "{message}");
        }
    }

    #[test]
    fn one_peer_is_the_identity() {
        let device = Device::default();
        let config = DistributedConfig {
            gather_negatives: true,
            ..Default::default()
        };
        let peer = distributed::start_peer::<Ad>(0, device, &config).unwrap();
        let model = TinyNet::<Ad>::new(0.0, &device);
        let grads = gradients(&model, 0, &device);
        let before = values(&model, Some(&grads));
        let grads = distributed::average_gradients(&peer, grads, &model).unwrap();
        assert_close("gradients", &values(&model, Some(&grads)), &before, 0.0);
        let local = features(0, &device);
        let gathered = distributed::gather_features(&peer, local.clone()).unwrap();
        assert_eq!(gathered.into_data(), local.into_data());
        distributed::finish(peer).unwrap();
    }
}
