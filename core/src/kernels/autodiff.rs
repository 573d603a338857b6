//! The kernels as operations of burn's autodiff graph (`Autodiff<Flex>` on the CPU, and
//! `Autodiff` over burn's GPU backends for the kernels of [`super::cube`]): the forward pass runs
//! the kernel and keeps the tensors its backward pass needs; the backward pass computes only the
//! gradients the graph asks for (no input gradient for the network's input, for example).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::NodeId;
use burn::backend::{Autodiff, Flex};
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;

/// A float tensor of the autodiff backend over `B` (by default the CPU backend).
pub type AutodiffTensor<B = Flex> = FloatTensor<Autodiff<B>>;

/// The backward pass of one kernel operation on backend `B` (by default the CPU backend).
pub trait KernelBackward<B: Backend = Flex>: core::fmt::Debug + Send + 'static {
    /// The gradient of each parent (in the order the operation was tracked with) that `wanted`
    /// asks for, from the kept tensors and the output gradient.
    fn gradients(
        &self,
        kept: &[FloatTensor<B>],
        grad: &FloatTensor<B>,
        wanted: &[bool],
    ) -> Vec<Option<FloatTensor<B>>>;
}

/// The graph step of a kernel operation: its backward pass and the ids of the kept tensors.
#[derive(Debug)]
struct Step<O> {
    op: O,
}

impl<B: Backend, O: KernelBackward<B>, const N: usize> Backward<B, N> for Step<O> {
    type State = Vec<NodeId>;

    fn backward(
        self,
        ops: Ops<Self::State, N>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let grad = grads.consume::<B>(&ops.node);
        let kept: Vec<FloatTensor<B>> = ops
            .state
            .iter()
            .map(|id| checkpointer.retrieve_node_output::<FloatTensor<B>>(*id))
            .collect();
        let wanted: Vec<bool> = ops.parents.iter().map(Option::is_some).collect();
        let gradients = self.op.gradients(&kept, &grad, &wanted);
        for (parent, gradient) in ops.parents.into_iter().zip(gradients) {
            if let (Some(node), Some(gradient)) = (parent, gradient) {
                grads.register::<B>(node.id, gradient);
            }
        }
    }
}

/// `output` (computed by the caller from the parents' values) as a tracked node of the graph,
/// with `op` as its backward pass and `kept` (some of the parents) kept for it.
pub fn track<B: Backend, O: KernelBackward<B>, const N: usize>(
    op: O,
    parents: [&AutodiffTensor<B>; N],
    kept: &[&AutodiffTensor<B>],
    output: FloatTensor<B>,
) -> AutodiffTensor<B> {
    let nodes = parents.map(|parent| parent.node.clone());
    match Backward::<B, N>::prepare::<NoCheckpointing>(Step { op }, nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(mut prep) => {
            let state = kept.iter().map(|tensor| prep.checkpoint(tensor)).collect();
            prep.finish(state, output)
        }
        OpsKind::UnTracked(prep) => prep.finish(output),
    }
}

/// [`track`] for an operation of `[input, weight]` and an optional bias (parents `[input,
/// weight]` or `[input, weight, bias]`), keeping the input and the weight.
pub fn track_with_bias<B: Backend, O: KernelBackward<B>>(
    op: O,
    [input, weight]: [&AutodiffTensor<B>; 2],
    bias: Option<&AutodiffTensor<B>>,
    output: FloatTensor<B>,
) -> AutodiffTensor<B> {
    match bias {
        Some(bias) => track(op, [input, weight, bias], &[input, weight], output),
        None => track(op, [input, weight], &[input, weight], output),
    }
}
