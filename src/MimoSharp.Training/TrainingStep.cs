namespace MimoSharp.Training;

/// <summary>A training error with a message fit for the user (what, where, what was expected).</summary>
public sealed class TrainingException(string message) : Exception(message);

/// <summary>What one update did.</summary>
public readonly record struct StepResult(StepLosses Losses, float GradientNorm, float LearningRate);

/// <summary>One update: forward + backward, a finiteness check, gradient clipping, AdamW (and Muon for its matrices), then the router-bias balance update.</summary>
public static class TrainingStep
{
    public static StepResult Run(TrainingModel model, AdamW optimizer, ReadOnlySpan<int> tokens, float learningRate, float mtpWeight,
        float gradientClip, float routerBiasGamma, int step, Muon? muon = null)
    {
        StepLosses losses = model.Forward(tokens, mtpWeight, computeGradients: true);
        if (!float.IsFinite(losses.Total))
        {
            string where = model.FindNonFiniteTensor(model.Parameters) is { } p ? $"parameter \"{p}\""
                : model.FindNonFiniteActivation() is { } a ? $"activation \"{a}\""
                : "the logits (overflow in the lm_head)";
            throw new TrainingException($"step {step}: the loss is {losses.Total} (main {losses.Main}, MTP {losses.Mtp}); the first non-finite tensor is {where}. " +
                "Lower the learning rate or raise the warmup; resume from the last checkpoint.");
        }
        float norm = AdamW.ClipGradients(model.Gradients, gradientClip);
        if (!float.IsFinite(norm))
        {
            string name = model.FindNonFiniteTensor(model.Gradients) ?? "(unknown)";
            throw new TrainingException($"step {step}: the gradient norm is {norm}; the first non-finite gradient is \"{name}\". " +
                "Lower the learning rate or raise the warmup; resume from the last checkpoint.");
        }
        optimizer.Update(model.Parameters, model.Gradients, learningRate);
        muon?.Update(model.Parameters, model.Gradients, learningRate);
        model.UpdateRouterBias(routerBiasGamma);
        return new StepResult(losses, norm, learningRate);
    }
}
