//! The kernels as operations of burn's autodiff graph on the CPU backend (`Autodiff<Flex>`):
//! the forward pass runs the kernel and keeps the tensors its backward pass needs; the backward
//! pass computes only the gradients the graph asks for (no input gradient for the network's
//! input, for example).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::NodeId;
use burn::backend::flex::FlexTensor;
use burn::backend::Flex;
use burn::tensor::ops::FloatTensor;

use super::route::AutodiffFlex;

/// A float tensor of the autodiff CPU backend.
pub type AutodiffTensor = FloatTensor<AutodiffFlex>;

/// The backward pass of one kernel operation.
pub trait KernelBackward: core::fmt::Debug + Send + 'static {
    /// The gradient of each parent (in the order the operation was tracked with) that `wanted`
    /// asks for, from the kept tensors and the output gradient.
    fn gradients(
        &self,
        kept: &[FlexTensor],
        grad: &FlexTensor,
        wanted: &[bool],
    ) -> Vec<Option<FlexTensor>>;
}

/// The graph step of a kernel operation: its backward pass and the ids of the kept tensors.
#[derive(Debug)]
struct Step<O> {
    op: O,
}

impl<O: KernelBackward, const N: usize> Backward<Flex, N> for Step<O> {
    type State = Vec<NodeId>;

    fn backward(
        self,
        ops: Ops<Self::State, N>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let grad = grads.consume::<Flex>(&ops.node);
        let kept: Vec<FlexTensor> = ops
            .state
            .iter()
            .map(|id| checkpointer.retrieve_node_output::<FlexTensor>(*id))
            .collect();
        let wanted: Vec<bool> = ops.parents.iter().map(Option::is_some).collect();
        let gradients = self.op.gradients(&kept, &grad, &wanted);
        for (parent, gradient) in ops.parents.into_iter().zip(gradients) {
            if let (Some(node), Some(gradient)) = (parent, gradient) {
                grads.register::<Flex>(node.id, gradient);
            }
        }
    }
}

/// `output` (computed by the caller from the parents' values) as a tracked node of the graph,
/// with `op` as its backward pass and `kept` (some of the parents) kept for it.
pub fn track<O: KernelBackward, const N: usize>(
    op: O,
    parents: [&AutodiffTensor; N],
    kept: &[&AutodiffTensor],
    output: FlexTensor,
) -> AutodiffTensor {
    let nodes = parents.map(|parent| parent.node.clone());
    match Backward::<Flex, N>::prepare::<NoCheckpointing>(Step { op }, nodes)
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
pub fn track_with_bias<O: KernelBackward>(
    op: O,
    [input, weight]: [&AutodiffTensor; 2],
    bias: Option<&AutodiffTensor>,
    output: FlexTensor,
) -> AutodiffTensor {
    match bias {
        Some(bias) => track(op, [input, weight, bias], &[input, weight], output),
        None => track(op, [input, weight], &[input, weight], output),
    }
}
