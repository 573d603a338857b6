//! The kernels as operations of burn's autodiff graph on the CPU backend (`Autodiff<Flex>`):
//! the forward pass runs the kernel and keeps the input and the weight; the backward pass
//! computes only the gradients the graph asks for (no input gradient for the network's input).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::NodeId;
use burn::backend::flex::FlexTensor;
use burn::backend::Flex;
use burn::tensor::ops::FloatTensor;

use super::plan::ConvPlan;
use super::route::{flex_tensor, values, AutodiffFlex};

/// A float tensor of the autodiff CPU backend.
pub type AutodiffTensor = FloatTensor<AutodiffFlex>;

/// The backward step of a kernel convolution; the state is the input and the weight.
#[derive(Debug)]
struct ConvBackward {
    plan: ConvPlan,
}

/// The input and weight gradients the graph asks for.
fn input_and_weight_grads(
    plan: &ConvPlan,
    [x, weight]: [FlexTensor; 2],
    grad: &FlexTensor,
    [want_input, want_weight]: [bool; 2],
) -> [Option<FlexTensor>; 2] {
    let grad_values = values(grad);
    let x_dims = x.layout().shape().to_vec();
    let w_dims = weight.layout().shape().to_vec();
    let input = want_input.then(|| {
        let dx = plan.backward_input(&values(&weight), &grad_values);
        flex_tensor(dx, &x_dims)
    });
    let weight_grad = want_weight.then(|| {
        let dw = plan.backward_weight(&values(&x), &grad_values);
        flex_tensor(dw, &w_dims)
    });
    [input, weight_grad]
}

impl Backward<Flex, 2> for ConvBackward {
    type State = (NodeId, NodeId);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_w] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let x = checkpointer.retrieve_node_output::<FlexTensor>(ops.state.0);
        let weight = checkpointer.retrieve_node_output::<FlexTensor>(ops.state.1);
        let wanted = [node_x.is_some(), node_w.is_some()];
        let [dx, dw] = input_and_weight_grads(&self.plan, [x, weight], &grad, wanted);
        if let (Some(node), Some(dx)) = (node_x, dx) {
            grads.register::<Flex>(node.id, dx);
        }
        if let (Some(node), Some(dw)) = (node_w, dw) {
            grads.register::<Flex>(node.id, dw);
        }
    }
}

impl Backward<Flex, 3> for ConvBackward {
    type State = (NodeId, NodeId);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_w, node_b] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let x = checkpointer.retrieve_node_output::<FlexTensor>(ops.state.0);
        let weight = checkpointer.retrieve_node_output::<FlexTensor>(ops.state.1);
        if let Some(node) = node_b {
            let db = self.plan.backward_bias(&values(&grad));
            let channels = db.len();
            grads.register::<Flex>(node.id, flex_tensor(db, &[channels]));
        }
        let wanted = [node_x.is_some(), node_w.is_some()];
        let [dx, dw] = input_and_weight_grads(&self.plan, [x, weight], &grad, wanted);
        if let (Some(node), Some(dx)) = (node_x, dx) {
            grads.register::<Flex>(node.id, dx);
        }
        if let (Some(node), Some(dw)) = (node_w, dw) {
            grads.register::<Flex>(node.id, dw);
        }
    }
}

/// The forward pass of `plan` on the CPU backend's tensors.
pub fn forward_flex(
    plan: &ConvPlan,
    x: &FlexTensor,
    weight: &FlexTensor,
    bias: Option<&FlexTensor>,
) -> FlexTensor {
    let bias_values = bias.map(values);
    let out = plan.forward(&values(x), &values(weight), bias_values.as_deref());
    flex_tensor(out, &plan.output_dims())
}

/// `plan`'s convolution as a tracked operation of the autodiff graph.
pub fn conv(
    plan: ConvPlan,
    x: AutodiffTensor,
    weight: AutodiffTensor,
    bias: Option<AutodiffTensor>,
) -> AutodiffTensor {
    let output = forward_flex(
        &plan,
        &x.primitive,
        &weight.primitive,
        bias.as_ref().map(|b| &b.primitive),
    );
    let step = ConvBackward { plan };
    match bias {
        Some(bias) => {
            let nodes = [x.node.clone(), weight.node.clone(), bias.node.clone()];
            match Backward::<Flex, 3>::prepare::<NoCheckpointing>(step, nodes)
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(mut prep) => {
                    let state = (prep.checkpoint(&x), prep.checkpoint(&weight));
                    prep.finish(state, output)
                }
                OpsKind::UnTracked(prep) => prep.finish(output),
            }
        }
        None => {
            let nodes = [x.node.clone(), weight.node.clone()];
            match Backward::<Flex, 2>::prepare::<NoCheckpointing>(step, nodes)
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(mut prep) => {
                    let state = (prep.checkpoint(&x), prep.checkpoint(&weight));
                    prep.finish(state, output)
                }
                OpsKind::UnTracked(prep) => prep.finish(output),
            }
        }
    }
}
